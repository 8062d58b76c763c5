"""The operators tvm-morello synthesises, as TE PrimFuncs with numpy references (for CLI, benchmarks, tests)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import InvalidShapeError, UnsupportedOperatorError


@dataclass(frozen=True)
class Workload:
    """A PrimFunc, its input shapes, its output shape, its flop count and a numpy reference."""

    name: str
    func: object
    input_shapes: tuple[tuple[int, ...], ...]
    output_shape: tuple[int, ...]
    flops: int
    reference: Callable[..., np.ndarray]

    def random_inputs(self, seed: int = 0) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        return [rng.uniform(-1, 1, shape).astype("float32") for shape in self.input_shapes]


def _check(name: str, dims: tuple[int, ...], count: int) -> None:
    if len(dims) != count:
        raise InvalidShapeError(f"{name} takes {count} dimensions, got {'x'.join(map(str, dims))}")
    if any(d < 1 for d in dims):
        raise InvalidShapeError(f"{name} shape {'x'.join(map(str, dims))}: every dimension must be >= 1")


def dense(m: int, k: int, n: int, prepacked: int = 0) -> Workload:
    """Y[m, n] = X[m, k] W[n, k]ᵀ; with ``prepacked`` W arrives as panels [n / p, k, p]."""
    from tvm import te

    _check("dense", (m, k, n), 3)
    x = te.placeholder((m, k), name="X")
    r = te.reduce_axis((0, k), "k")
    if prepacked:
        if n % prepacked:
            raise InvalidShapeError(f"dense n={n} is not a multiple of the panel width {prepacked}")
        w = te.placeholder((n // prepacked, k, prepacked), name="Wp")
        y = te.compute((m, n), lambda i, j: te.sum(x[i, r] * w[j // prepacked, r, j % prepacked], axis=r), name="Y")

        def reference(a, packed):
            return a @ packed.transpose(0, 2, 1).reshape(n, k).T

        shapes = ((m, k), (n // prepacked, k, prepacked))
    else:
        w = te.placeholder((n, k), name="W")
        y = te.compute((m, n), lambda i, j: te.sum(x[i, r] * w[j, r], axis=r), name="Y")
        reference, shapes = (lambda a, b: a @ b.T), ((m, k), (n, k))
    return Workload(f"dense_{m}x{k}x{n}", te.create_prim_func([x, w, y]), shapes, (m, n), 2 * m * k * n, reference)


def matmul(m: int, k: int, n: int) -> Workload:
    """C[m, n] = A[m, k] B[k, n]."""
    from tvm import te

    _check("matmul", (m, k, n), 3)
    a, b = te.placeholder((m, k), name="A"), te.placeholder((k, n), name="B")
    r = te.reduce_axis((0, k), "k")
    c = te.compute((m, n), lambda i, j: te.sum(a[i, r] * b[r, j], axis=r), name="C")
    return Workload(f"matmul_{m}x{k}x{n}", te.create_prim_func([a, b, c]), ((m, k), (k, n)), (m, n), 2 * m * k * n,
                    lambda x, y: x @ y)


def batch_matmul(batch: int, m: int, k: int, n: int, transpose_b: bool = True) -> Workload:
    """C[b, m, n] = A[b, m, k] B[b, n, k]ᵀ (TOPI's batch_matmul; NN with ``transpose_b=False``)."""
    from tvm import te, topi

    _check("batch_matmul", (batch, m, k, n), 4)
    a = te.placeholder((batch, m, k), name="A")
    b_shape = (batch, n, k) if transpose_b else (batch, k, n)
    b = te.placeholder(b_shape, name="B")
    c = topi.nn.batch_matmul(a, b, transpose_b=transpose_b)
    reference = (lambda x, y: x @ y.transpose(0, 2, 1)) if transpose_b else (lambda x, y: x @ y)
    return Workload(f"batch_matmul_{batch}x{m}x{k}x{n}", te.create_prim_func([a, b, c]), ((batch, m, k), b_shape),
                    (batch, m, n), 2 * batch * m * k * n, reference)


def make_workload(op: str, shape: tuple[int, ...], prepacked: int = 0) -> Workload:
    """Workload by operator name: 'dense' and 'matmul' take MxKxN, 'batch_matmul' BxMxKxN."""
    arity = {"dense": 3, "matmul": 3, "batch_matmul": 4}
    if op not in arity:
        raise UnsupportedOperatorError(f"operator {op!r}: supported are {', '.join(map(repr, arity))}")
    _check(op, tuple(shape), arity[op])
    if op == "dense":
        return dense(*shape, prepacked=prepacked)
    if prepacked:
        raise UnsupportedOperatorError(f"prepacked weights are supported for dense only, not {op!r}")
    if op == "matmul":
        return matmul(*shape)
    return batch_matmul(*shape)
