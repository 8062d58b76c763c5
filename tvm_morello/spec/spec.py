"""Specs: what a (sub)program must compute, where its operands live, and what memory it may use."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Union

from ..errors import InvalidShapeError, UnsupportedDtypeError
from .operand import COL, ROW, Layout, Level, Operand

SUPPORTED_DTYPES = ("float32",)


@dataclass(frozen=True, order=True)
class MemoryLimits:
    """What a spec's implementation may still allocate: vector registers and L1 lines per core."""

    vregs: int
    l1_lines: int

    def minus(self, other: "MemoryLimits") -> "MemoryLimits":
        """What is left after an allocation, rounded down to powers of two (as Morello does).

        Rounding keeps the number of distinct limits logarithmic, so sub-specs meet in the memo table;
        it is monotone, so more memory still never costs more.
        """
        return MemoryLimits(
            _floor_power_of_two(self.vregs - other.vregs), _floor_power_of_two(self.l1_lines - other.l1_lines)
        )

    def covers(self, usage: "MemoryLimits") -> bool:
        return usage.vregs <= self.vregs and usage.l1_lines <= self.l1_lines

    def peak(self, other: "MemoryLimits") -> "MemoryLimits":
        return MemoryLimits(max(self.vregs, other.vregs), max(self.l1_lines, other.l1_lines))

    def plus(self, other: "MemoryLimits") -> "MemoryLimits":
        return MemoryLimits(self.vregs + other.vregs, self.l1_lines + other.l1_lines)

    def as_tuple(self) -> tuple[int, int]:
        return (self.vregs, self.l1_lines)


NO_MEMORY = MemoryLimits(0, 0)


def _floor_power_of_two(value: int) -> int:
    return 0 if value <= 0 else 1 << (value.bit_length() - 1)


@dataclass(frozen=True, order=True)
class Matmul:
    """out[b, m, n] (+)= sum_k lhs[b, m, k] * rhs[b, k, n].

    Layouts are relative to the logical operands: lhs [m, k], rhs [k, n], out [m, n]. Dense
    (Y = X Wᵀ with W[n, k]) is rhs in ``col`` layout; a prepacked weight is rhs in ``panel`` layout.
    ``serial_only`` forbids parallel loops (the body of a parallel loop is serial).
    """

    b: int
    m: int
    k: int
    n: int
    lhs: Operand
    rhs: Operand
    out: Operand
    limits: MemoryLimits
    accumulate: bool = False
    serial_only: bool = False

    def __post_init__(self) -> None:
        for name in ("b", "m", "k", "n"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InvalidShapeError(f"matmul dimension {name}={value!r}: every dimension must be a positive integer")
        for role in ("lhs", "rhs", "out"):
            dtype = getattr(self, role).dtype
            if dtype not in SUPPORTED_DTYPES:
                raise UnsupportedDtypeError(f"{role} dtype {dtype!r}: supported dtypes are {SUPPORTED_DTYPES}")

    @property
    def flops(self) -> int:
        return 2 * self.b * self.m * self.k * self.n

    @property
    def volume(self) -> int:
        return self.b * self.m * self.k * self.n

    def operand_shape(self, role: str) -> tuple[int, int]:
        """Logical 2-D shape of an operand tile (the batch dimension is a loop around it)."""
        return {"lhs": (self.m, self.k), "rhs": (self.k, self.n), "out": (self.m, self.n)}[role]

    def __str__(self) -> str:
        acc = "MatmulAccum" if self.accumulate else "Matmul"
        batch = f"{self.b}x" if self.b > 1 else ""
        serial = ", serial" if self.serial_only else ""
        return f"{acc}({batch}{self.m}x{self.k}x{self.n}, {self.lhs}, {self.rhs}, {self.out}{serial})"


@dataclass(frozen=True, order=True)
class Fill:
    """Set an [m, n] output tile to zero (the prologue of an accumulating matmul)."""

    m: int
    n: int
    out: Operand

    @property
    def volume(self) -> int:
        return self.m * self.n

    def __str__(self) -> str:
        return f"Zero({self.m}x{self.n}, {self.out})"


@dataclass(frozen=True, order=True)
class Move:
    """Copy an [rows, cols] tile between memory levels or layouts (pack, load, store)."""

    rows: int
    cols: int
    source: Operand
    destination: Operand

    @property
    def volume(self) -> int:
        return self.rows * self.cols

    def __str__(self) -> str:
        return f"Move({self.rows}x{self.cols}, {self.source} -> {self.destination})"


Spec = Union[Matmul, Fill, Move]


def _canonical_layout(layout: Layout, rows: int, cols: int) -> Layout:
    """Layouts that address a tile identically collapse to one representative (a lanes tile holds vectors:
    it has none)."""
    if layout.kind == "lanes":
        return layout
    if rows == 1 and cols == 1:
        return ROW
    if layout.kind == "panel" and (cols == 1 or (rows == 1 and cols <= layout.panel)):
        return ROW  # one column, or one row inside one panel, is addressed exactly like a row-major tile
    if layout.kind == "col" and cols == 1:
        return COL
    return layout


def canonicalize(spec: Spec) -> Spec:
    """The representative of a spec's equivalence class, so equal problems share a memo entry."""
    if isinstance(spec, Matmul):
        updates = {}
        for role in ("lhs", "rhs", "out"):
            operand = getattr(spec, role)
            layout = _canonical_layout(operand.layout, *spec.operand_shape(role))
            if layout != operand.layout:
                updates[role] = replace(operand, layout=layout)
        return replace(spec, **updates) if updates else spec
    if isinstance(spec, Move):
        source = replace(spec.source, layout=_canonical_layout(spec.source.layout, spec.rows, spec.cols))
        destination = replace(spec.destination, layout=_canonical_layout(spec.destination.layout, spec.rows, spec.cols))
        return replace(spec, source=source, destination=destination)
    return spec


def matmul_spec(
    m: int,
    k: int,
    n: int,
    *,
    b: int = 1,
    rhs_layout: Layout = ROW,
    lhs_layout: Layout = ROW,
    target,
) -> Matmul:
    """A root matmul spec with every operand in global memory and all of ``target``'s memory (a CpuTarget)."""
    limits = target.memory_limits()
    return Matmul(b, m, k, n, Operand(Level.GLOBAL, lhs_layout), Operand(Level.GLOBAL, rhs_layout), Operand(), limits)


def dense_spec(m: int, k: int, n: int, *, prepacked: int = 0, target) -> Matmul:
    """Y[m, n] = X[m, k] W[n, k]ᵀ; ``prepacked`` > 0 means W arrives packed in panels of that width."""
    from .operand import panel

    return matmul_spec(m, k, n, rhs_layout=panel(prepacked) if prepacked else COL, target=target)
