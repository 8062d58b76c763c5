"""Transformer layers as ONNX, in the operators their exporters write, with random weights: what the tests, the
tutorial and the whole-model benchmarks compile. Each takes ``hidden_states`` [batch, seq, hidden] (dynamic
``batch`` and ``seq``) and returns ``out`` of the same shape.

- ``bert_encoder_onnx``: BERT (PyTorch's export, opset 17): MatMul + Add, heads by Reshape/Transpose, Softmax,
  LayerNormalization, erf GELU.
- ``gpt2_block_onnx``: GPT-2 (a pre-LayerNormalization exporter, opset 14): LayerNorm written out (ReduceMean, Pow,
  Sqrt, Div), one fused QKV MatMul then Split, a causal mask sliced from a constant triangle by Where, tanh GELU
  with Pow(x, 3).
- ``llama_block_onnx``: Llama: RMSNorm (Pow, ReduceMean, Sqrt, Reciprocal), bias-free projections, a causal mask
  added to the scores, a SiLU-gated MLP (Sigmoid(g) * g * up).
"""
from __future__ import annotations

import numpy as np


class _Graph:
    """An ONNX graph being written: nodes, initialisers (random weights from one seed) and fresh names."""

    def __init__(self, seed: int):
        self.rng, self.nodes, self.initializers, self.names = np.random.default_rng(seed), [], [], 0

    def _name(self, name: str | None) -> str:
        self.names += 1
        return name or f"v{self.names}"

    def const(self, value, name: str | None = None) -> str:
        from onnx import numpy_helper

        name = self._name(name)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(self, shape, scale: float, name: str | None = None) -> str:
        return self.const(self.rng.normal(0, scale, shape).astype("float32"), name)

    def node(self, op: str, inputs, name: str | None = None, **attrs) -> str:
        from onnx import helper

        name = self._name(name)
        self.nodes.append(helper.make_node(op, list(inputs), [name], **attrs))
        return name

    def split(self, x: str, parts: int, size: int) -> list[str]:
        """x's last axis cut into ``parts`` pieces of ``size``."""
        from onnx import helper

        outputs = [self._name(None) for _ in range(parts)]
        self.nodes.append(helper.make_node("Split", [x, self.const(np.array([size] * parts, "int64"))], outputs,
                                           axis=-1))
        return outputs

    def linear(self, x: str, k: int, n: int, prefix: str | None = None, bias: bool = True) -> str:
        """x [.., k] times a [k, n] weight (scaled so activations keep their size), plus a bias."""
        y = self.node("MatMul", [x, self.weight((k, n), k ** -0.5, prefix and f"{prefix}.w")], prefix and f"{prefix}.mm")
        return self.node("Add", [y, self.weight((n,), 0.02, prefix and f"{prefix}.b")], prefix and f"{prefix}.out") \
            if bias else y

    def heads(self, x: str, heads: int, head: int, perm) -> str:
        """[b, T, heads * head] -> [b, T, heads, head], transposed by ``perm``."""
        shape = self.const(np.array([0, 0, heads, head], "int64"))
        return self.node("Transpose", [self.node("Reshape", [x, shape])], perm=list(perm))

    def split_heads(self, q: str, k: str, v: str, heads: int, head: int) -> tuple[str, str, str]:
        """Q and V as [b, heads, T, head], K as [b, heads, head, T] (ready for Q K), as PyTorch exports them."""
        return (self.heads(q, heads, head, (0, 2, 1, 3)), self.heads(k, heads, head, (0, 2, 3, 1)),
                self.heads(v, heads, head, (0, 2, 1, 3)))

    def merge_heads(self, context: str, hidden: int) -> str:
        """[b, heads, T, head] -> [b, T, hidden]."""
        merged = self.node("Transpose", [context], perm=[0, 2, 1, 3])
        return self.node("Reshape", [merged, self.const(np.array([0, 0, hidden], "int64"))])

    def causal_bias(self, x: str, max_positions: int, masked: float) -> str:
        """[1, 1, T, T] of the constant triangle (``masked`` above the diagonal, 0 on and below) sliced to x's T."""
        seq = self.node("Gather", [self.node("Shape", [x]), self.const(np.array(1, "int64"))], axis=0)
        seq = self.node("Unsqueeze", [seq, self.const(np.array([0], "int64"))])
        triangle = self.const(np.triu(np.full((1, 1, max_positions, max_positions), masked, "float32"), 1))
        zero = self.const(np.array([0], "int64"))
        rows = self.node("Slice", [triangle, zero, seq, self.const(np.array([2], "int64"))])
        return self.node("Slice", [rows, zero, seq, self.const(np.array([3], "int64"))])

    def model(self, name: str, hidden: int, opset: int):
        """The model whose output ``out`` is the last node's."""
        from onnx import TensorProto, helper

        self.nodes[-1].output[0] = "out"
        graph = helper.make_graph(
            self.nodes, name, [helper.make_tensor_value_info("hidden_states", TensorProto.FLOAT, ["batch", "seq", hidden])],
            [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", "seq", hidden])], self.initializers)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def bert_encoder_onnx(layers: int = 1, hidden: int = 768, heads: int = 12, ffn: int = 3072, seed: int = 0):
    """A BERT encoder (``layers`` layers) in the operators a PyTorch export emits: MatMul + Add projections,
    Reshape/Transpose into heads, MatMul for the scores, Mul by the scale, Softmax, MatMul by V,
    LayerNormalization, Erf-GELU."""
    g = _Graph(seed)
    head = hidden // heads

    def layer_norm(x, prefix):
        gamma, beta = g.const(np.ones(hidden, "float32"), f"{prefix}.gamma"), g.const(np.zeros(hidden, "float32"),
                                                                                      f"{prefix}.beta")
        return g.node("LayerNormalization", [x, gamma, beta], f"{prefix}.out", axis=-1, epsilon=1e-12)

    scale, sqrt2, one, half = (g.const(np.array(v, "float32"), name) for v, name in (
        (head ** -0.5, "scale"), (2 ** 0.5, "sqrt2"), (1.0, "one"), (0.5, "half")))
    x = "hidden_states"
    for i in range(layers):
        p = f"l{i}"
        q, k, v = (g.linear(x, hidden, hidden, f"{p}.{n}") for n in ("q", "k", "v"))
        q, k, v = g.split_heads(q, k, v, heads, head)
        scores = g.node("Mul", [g.node("MatMul", [q, k], f"{p}.qk"), scale], f"{p}.scores")
        probs = g.node("Softmax", [scores], f"{p}.probs", axis=-1)
        context = g.merge_heads(g.node("MatMul", [probs, v], f"{p}.av"), hidden)
        attn = layer_norm(g.node("Add", [g.linear(context, hidden, hidden, f"{p}.o"), x], f"{p}.res1"), f"{p}.ln1")
        up = g.linear(attn, hidden, ffn, f"{p}.ffn1")
        erf = g.node("Erf", [g.node("Div", [up, sqrt2], f"{p}.gelu.div")], f"{p}.gelu.erf")
        gelu = g.node("Mul", [g.node("Mul", [up, g.node("Add", [erf, one], f"{p}.gelu.add")], f"{p}.gelu.mul"), half],
                      f"{p}.gelu")
        down = g.linear(gelu, ffn, hidden, f"{p}.ffn2")
        x = layer_norm(g.node("Add", [down, attn], f"{p}.res2"), f"{p}.ln2")
    return g.model("bert_encoder", hidden, opset=17)


def gpt2_block_onnx(layers: int = 1, hidden: int = 768, heads: int = 12, ffn: int = 3072, max_positions: int = 1024,
                    seed: int = 0):
    """GPT-2 decoder blocks (pre-LayerNorm, causal) as an opset-14 exporter writes them (see the module)."""
    g = _Graph(seed)
    head = hidden // heads

    def layer_norm(x):
        mean = g.node("ReduceMean", [x], axes=[-1], keepdims=1)
        centred = g.node("Sub", [x, mean])
        variance = g.node("ReduceMean", [g.node("Pow", [centred, g.const(np.float32(2))])], axes=[-1], keepdims=1)
        deviation = g.node("Sqrt", [g.node("Add", [variance, g.const(np.float32(1e-5))])])
        scaled = g.node("Mul", [g.node("Div", [centred, deviation]), g.const(np.ones(hidden, "float32"))])
        return g.node("Add", [scaled, g.const(np.zeros(hidden, "float32"))])

    x = "hidden_states"
    for _ in range(layers):
        qkv = g.linear(layer_norm(x), hidden, 3 * hidden)
        q, k, v = g.split(qkv, 3, hidden)
        q, k, v = g.split_heads(q, k, v, heads, head)
        scores = g.node("Div", [g.node("MatMul", [q, k]), g.const(np.float32(head ** 0.5))])
        visible = g.node("Equal", [g.causal_bias(x, max_positions, 1.0), g.const(np.float32(0))])
        scores = g.node("Where", [visible, scores, g.const(np.float32(-1e4))])
        context = g.merge_heads(g.node("MatMul", [g.node("Softmax", [scores], axis=-1), v]), hidden)
        x = g.node("Add", [g.linear(context, hidden, hidden), x])
        up = g.linear(layer_norm(x), hidden, ffn)
        cubic = g.node("Add", [up, g.node("Mul", [g.node("Pow", [up, g.const(np.float32(3))]),
                                                  g.const(np.float32(0.044715))])])
        tanh = g.node("Tanh", [g.node("Mul", [cubic, g.const(np.float32((2 / np.pi) ** 0.5))])])
        gelu = g.node("Mul", [g.node("Mul", [up, g.const(np.float32(0.5))]),
                              g.node("Add", [tanh, g.const(np.float32(1))])])
        x = g.node("Add", [g.linear(gelu, ffn, hidden), x])
    return g.model("gpt2_block", hidden, opset=14)


def llama_block_onnx(layers: int = 1, hidden: int = 1024, heads: int = 16, ffn: int = 2816, max_positions: int = 1024,
                     seed: int = 0):
    """Llama decoder blocks (RMSNorm, causal, SiLU-gated MLP, no biases) in ONNX operators (see the module);
    rotary embeddings are left out."""
    g = _Graph(seed)
    head = hidden // heads

    def rms_norm(x):
        mean_square = g.node("ReduceMean", [g.node("Pow", [x, g.const(np.float32(2))])], axes=[-1], keepdims=1)
        inverse = g.node("Reciprocal", [g.node("Sqrt", [g.node("Add", [mean_square, g.const(np.float32(1e-6))])])])
        return g.node("Mul", [g.node("Mul", [x, inverse]), g.const(np.ones(hidden, "float32"))])

    x = "hidden_states"
    for _ in range(layers):
        normed = rms_norm(x)
        q, k, v = (g.linear(normed, hidden, hidden, bias=False) for _ in range(3))
        q, k, v = g.split_heads(q, k, v, heads, head)
        scores = g.node("Mul", [g.node("MatMul", [q, k]), g.const(np.float32(head ** -0.5))])
        scores = g.node("Add", [scores, g.causal_bias(x, max_positions, -1e9)])
        context = g.merge_heads(g.node("MatMul", [g.node("Softmax", [scores], axis=-1), v]), hidden)
        x = g.node("Add", [g.linear(context, hidden, hidden, bias=False), x])
        normed = rms_norm(x)
        gate, up = g.linear(normed, hidden, ffn, bias=False), g.linear(normed, hidden, ffn, bias=False)
        silu = g.node("Mul", [gate, g.node("Sigmoid", [gate])])
        x = g.node("Add", [g.linear(g.node("Mul", [silu, up]), ffn, hidden, bias=False), x])
    return g.model("llama_block", hidden, opset=14)
