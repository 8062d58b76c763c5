"""Dynamic workloads: matmul-family operators with symbolic dimensions and the ranges they take."""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..errors import InvalidShapeError, UnsupportedDtypeError, UnsupportedOperatorError

Dim = int | str  # a static extent, or the name of a symbolic variable
SMALL_END = 8  # the smallest values of a range, each tuned for (m = 1..8 for a range starting at 1)


@dataclass(frozen=True)
class VarRange:
    """Values a symbolic variable may take: every integer in ``lo..hi`` is accepted at run time;
    ``sample`` (with optional ``weights``) is the distribution tuning optimises for (default: all)."""

    lo: int
    hi: int
    sample: tuple[int, ...] = ()
    weights: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not (1 <= self.lo <= self.hi):
            raise InvalidShapeError(f"range {self.lo}..{self.hi}: need 1 <= lo <= hi")
        if any(not (self.lo <= v <= self.hi) for v in self.sample):
            raise InvalidShapeError(f"sample {self.sample} has values outside {self.lo}..{self.hi}")
        if self.weights and len(self.weights) != len(self.sample):
            raise InvalidShapeError(f"{len(self.weights)} weights for {len(self.sample)} sample values")

    @classmethod
    def scaled(cls, lo: int, hi: int, scale: int) -> "VarRange":
        """``scale * t`` for t in ``lo..hi`` (e.g. BERT's m = 16 * T): accepts 1..scale*hi, tunes for the multiples."""
        return cls(1, scale * hi, tuple(scale * t for t in range(lo, hi + 1)))

    def values(self) -> tuple[int, ...]:
        return self.sample or tuple(range(self.lo, self.hi + 1))

    def value_weights(self) -> np.ndarray:
        w = np.asarray(self.weights or [1.0] * len(self.values()), dtype=float)
        return w / w.sum()

    def to_json(self) -> dict:
        return {"lo": self.lo, "hi": self.hi, "sample": list(self.sample), "weights": list(self.weights)}


@dataclass(frozen=True)
class DynamicWorkload:
    """out[b?, m, n] = sum_k A[b?, m, k] * B, with B stored [b?, n, k] (``transpose_b``) or [b?, k, n].

    ``batch`` = 0 means no batch dimension (dense); a name is a symbolic batch (a model's batch x heads).
    ``constant_b`` marks B as a weight that is packed once into panels. Dimensions are ints or names of
    symbolic variables listed in ``ranges``.
    """

    name: str
    batch: Dim
    m: Dim
    k: Dim
    n: Dim
    ranges: tuple[tuple[str, VarRange], ...]
    transpose_b: bool = True
    constant_b: bool = False
    dtype: str = "float32"

    def __post_init__(self) -> None:
        names = {name for name, _ in self.ranges}
        for dim_name in ("batch", "m", "k", "n"):
            dim = getattr(self, dim_name)
            if isinstance(dim, str) and dim not in names:
                raise InvalidShapeError(f"{self.name}: dimension {dim_name}={dim!r} has no declared range")
            if isinstance(dim, int) and dim < (0 if dim_name == "batch" else 1):
                raise InvalidShapeError(f"{self.name}: dimension {dim_name}={dim} must be positive")
        if not isinstance(self.m, str):
            raise UnsupportedOperatorError(f"{self.name}: m={self.m} is static; the dynamic tuner needs a symbolic m")
        if self.constant_b and self.batch:
            raise UnsupportedOperatorError(f"{self.name}: a constant (prepacked) B is supported without a batch dimension")
        if self.constant_b and (isinstance(self.k, str) or isinstance(self.n, str)):
            raise UnsupportedOperatorError(f"{self.name}: a constant B needs static k and n (got k={self.k}, n={self.n})")
        if self.dtype != "float32":
            raise UnsupportedDtypeError(f"{self.name}: dtype {self.dtype!r}; only float32 is supported")

    @property
    def var_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.ranges)

    def range_of(self, name: str) -> VarRange:
        return dict(self.ranges)[name]

    def dims(self, env: Mapping[str, int]) -> tuple[int, int, int, int]:
        """Concrete (b, m, k, n) for an assignment of the symbolic variables."""

        def value(dim: Dim) -> int:
            return dim if isinstance(dim, int) else int(env[dim])

        return value(self.batch) if self.batch else 1, value(self.m), value(self.k), value(self.n)

    def flops(self, env: Mapping[str, int]) -> int:
        b, m, k, n = self.dims(env)
        return 2 * b * m * k * n

    def smallest_batch(self) -> int:
        """The fewest matrices a call multiplies (1 without a batch dimension)."""
        if isinstance(self.batch, str):
            return self.range_of(self.batch).lo
        return max(self.batch, 1)

    def packs_b(self) -> bool:
        """B goes through panel packing (weights once, activations per call) unless it is [k, n] with static n."""
        return self.constant_b or self.transpose_b or isinstance(self.n, str)

    def tuning_shapes(self, max_shapes: int = 64, seed: int = 0) -> tuple[list[dict[str, int]], np.ndarray]:
        """Assignments of the variables to tune for, with their weights (the share of the declared calls each
        stands for), at most ``max_shapes``, deterministic.

        Each variable: its ``SMALL_END`` smallest values each, then an even spread of the rest; every value's
        weight goes to the nearest picked one. Small calls are where a wrong kernel costs most relative to the
        call, and where one step of m changes the best kernel. Several variables: the grid of their picks, each
        variable's share of ``max_shapes`` growing with the log of its number of values, so every value picked for
        one is tuned with the other's small end too (a model's batch 1 with every short sequence)."""
        logs = [math.log(len(rng.values())) for _, rng in self.ranges]
        budgets = [max(1, int(max_shapes ** (log / sum(logs)) + 1e-9)) if sum(logs) else 1 for log in logs]
        picks = [(name, *_picked(rng, budget)) for (name, rng), budget in zip(self.ranges, budgets)]
        shapes, weights = [], []
        for combo in itertools.product(*[range(len(values)) for _, values, _ in picks]):
            shapes.append({name: int(values[i]) for (name, values, _), i in zip(picks, combo)})
            weights.append(math.prod(w[i] for (_, _, w), i in zip(picks, combo)))
        weights = np.asarray(weights)
        return shapes, weights / weights.sum()

    def input_shapes(self, env: Mapping[str, int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Shapes of A and of B as the user holds them (B unpacked)."""
        b, m, k, n = self.dims(env)
        lead = (b,) if self.batch else ()
        return lead + (m, k), lead + ((n, k) if self.transpose_b else (k, n))

    def output_shape(self, env: Mapping[str, int]) -> tuple[int, ...]:
        b, m, _, n = self.dims(env)
        return ((b,) if self.batch else ()) + (m, n)

    def reference(self, a: np.ndarray, b: np.ndarray, columns=slice(None)) -> np.ndarray:
        """The numpy result the compiled operator must reproduce (its output ``columns`` only, if given)."""
        bt = np.swapaxes(b, -1, -2) if self.transpose_b else b
        return np.matmul(a, bt[..., columns])

    def to_json(self) -> dict:
        return {
            "name": self.name, "batch": self.batch, "m": self.m, "k": self.k, "n": self.n,
            "transpose_b": self.transpose_b, "constant_b": self.constant_b, "dtype": self.dtype,
            "ranges": {name: r.to_json() for name, r in self.ranges},
        }


def _picked(rng: VarRange, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """``budget`` of the range's values (``spread_with_small_end``) and the weight each stands for."""
    order = np.argsort(rng.values(), kind="stable")  # a declared sample need not be sorted
    values, value_weights = np.asarray(rng.values())[order], rng.value_weights()[order]
    picked = spread_with_small_end(len(values), budget)
    nearest = np.abs(values[:, None] - values[picked][None, :]).argmin(axis=1)
    return values[picked], np.bincount(nearest, weights=value_weights, minlength=len(picked))


def spread_with_small_end(count: int, budget: int) -> list[int]:
    """Indices of ``budget`` of ``count`` sorted values: the first ``SMALL_END`` each, then an even spread of
    the rest that always ends on the last one (all of them when they fit)."""
    if count <= budget:
        return list(range(count))
    small = min(SMALL_END, budget // 2)
    rest = np.linspace(small, count - 1, budget - small).round().astype(int)
    return sorted(set(range(small)) | {int(i) for i in rest})


def ranges_of(ranges: Mapping[str, VarRange | tuple[int, int]]) -> tuple[tuple[str, VarRange], ...]:
    out = []
    for name, r in sorted(ranges.items()):
        out.append((name, r if isinstance(r, VarRange) else VarRange(int(r[0]), int(r[1]))))
    return tuple(out)


def dense(n: int, k: int, m_range: VarRange | tuple[int, int], *, name: str = "dense") -> DynamicWorkload:
    """Y[m, n] = X[m, k] W[n, k]ᵀ with symbolic m and a constant weight W (packed once)."""
    return DynamicWorkload(name, 0, "m", k, n, ranges_of({"m": m_range}), transpose_b=True, constant_b=True)


def batch_matmul(
    batch: int,
    m: Dim,
    k: Dim,
    n: Dim,
    ranges: Mapping[str, VarRange | tuple[int, int]],
    *,
    transpose_b: bool = True,
    name: str = "batch_matmul",
) -> DynamicWorkload:
    """out[b, m, n] = A[b, m, k] B[b, n, k]ᵀ (or B[b, k, n]); both operands are activations."""
    return DynamicWorkload(name, batch, m, k, n, ranges_of(ranges), transpose_b=transpose_b)


def bert_workloads(batch: int = 16, seq_hi: int = 128, hidden: int = 768, heads: int = 12,
                   seq_lo: int = 1) -> list[DynamicWorkload]:
    """BERT-base's matmuls over sequence length T in seq_lo..seq_hi (DietCode's dynamic workloads)."""
    m_range = VarRange.scaled(seq_lo, seq_hi, batch)
    t_range = VarRange(seq_lo, seq_hi)
    head_dim = hidden // heads
    return [
        dense(hidden, hidden, m_range, name="dense_qkv"),
        dense(4 * hidden, hidden, m_range, name="dense_ffn1"),
        dense(hidden, 4 * hidden, m_range, name="dense_ffn2"),
        batch_matmul(batch * heads, "T", head_dim, "T", {"T": t_range}, transpose_b=True, name="bmm_qk"),
        batch_matmul(batch * heads, "T", "T", head_dim, {"T": t_range}, transpose_b=False, name="bmm_av"),
    ]


__all__ = ["Dim", "DynamicWorkload", "VarRange", "batch_matmul", "bert_workloads", "dense"]
