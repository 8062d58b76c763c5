"""Elementwise work that follows a matmul (bias, GELU, residual, scaling), done in the kernel's write-back of
its register tile instead of as further passes over the output."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

BINARY = ("add", "subtract", "multiply", "divide")
UNARY = ("erf", "tanh", "exp", "sigmoid", "relu", "gelu", "gelu_tanh", "silu")  # the last four: relax.nn's
OPS = BINARY + UNARY
OPERAND_KINDS = ("step", "scalar", "vector", "tensor")


@dataclass(frozen=True)
class Operand:
    """An input of a step: ``step`` the result of step ``index`` (-1: the matmul's output); ``scalar`` a
    constant ``value``; ``vector`` the epilogue's ``index``-th vector input, one value per output column (a
    bias); ``tensor`` its ``index``-th input of the output's shape (a residual)."""

    kind: str
    index: int = 0
    value: float = 0.0

    def __post_init__(self):
        if self.kind not in OPERAND_KINDS:
            raise ValueError(f"epilogue operand kind {self.kind!r}: expected one of {OPERAND_KINDS}")


MATMUL_OUTPUT = Operand("step", -1)


@dataclass(frozen=True)
class Step:
    op: str
    args: tuple[Operand, ...]

    def __post_init__(self):
        if self.op not in OPS:
            raise ValueError(f"epilogue op {self.op!r}: expected one of {OPS}")
        if len(self.args) != (2 if self.op in BINARY else 1):
            raise ValueError(f"epilogue op {self.op!r} takes {2 if self.op in BINARY else 1} operands, "
                             f"got {len(self.args)}")


@dataclass(frozen=True)
class Epilogue:
    """Steps in program order, each reading the matmul's output, earlier steps, constants and the epilogue's
    inputs; the last step's result is the fused operator's output. Its scalars are part of it (compiled into
    the kernel), its vectors and tensors are inputs (layers with the same structure share one kernel)."""

    steps: tuple[Step, ...]
    vectors: int = 0
    tensors: int = 0

    def __post_init__(self):
        if not self.steps:
            raise ValueError("an epilogue needs at least one step")
        for i, step in enumerate(self.steps):
            if not any(arg.kind == "step" for arg in step.args):
                raise ValueError(f"epilogue step {i} ({step.op}) reads neither the matmul's output nor a step")
            for arg in step.args:
                if arg.kind == "step" and not -1 <= arg.index < i:
                    raise ValueError(f"epilogue step {i} reads step {arg.index}, which does not precede it")
                if arg.kind == "vector" and not 0 <= arg.index < self.vectors:
                    raise ValueError(f"epilogue step {i} reads vector {arg.index} of {self.vectors}")
                if arg.kind == "tensor" and not 0 <= arg.index < self.tensors:
                    raise ValueError(f"epilogue step {i} reads tensor {arg.index} of {self.tensors}")

    @property
    def ops(self) -> str:
        return "_".join(step.op for step in self.steps)

    @property
    def key(self) -> str:
        """A symbol-safe name: the ops, and a digest of the whole structure (operands, scalars)."""
        return f"{self.ops}_{hashlib.sha1(repr(self).encode()).hexdigest()[:6]}"
