"""Top-down memoised dynamic programming over rewrites, keeping the k cheapest programs per spec."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..cost.constants import CostConstants
from ..spec import NO_MEMORY, Matmul, MemoryLimits, Spec, canonicalize
from ..target import CpuTarget, resolve_target
from .program import Program
from .rewrites import actions_for


def _peak_with(allocation: MemoryLimits, children: Sequence[Program]) -> MemoryLimits:
    peak = NO_MEMORY
    for child in children:
        peak = peak.peak(child.peak)
    return peak.plus(allocation)


def _family(action, children: Sequence[Program]) -> str:
    """The micro-kernel a program's main path ends in: its own (a Select) or its body's; "" for the scalar
    fallback, which top-k keeps no place for."""
    if children:
        return children[action.body_index].family
    kernel = getattr(action, "kernel", None)
    return "" if kernel is None or kernel.fallback else str(kernel)


@dataclass
class SearchStats:
    """Matmul specs searched and specs answered by the memo table."""

    specs_solved: int = 0
    served_from_table: int = 0


class Synthesizer:
    """Solves specs bottom-up through a memo; one instance per (target, constants, top_k). ``constants``
    default to the target's own.

    Top-k composes each rewrite with the k best programs of its body sub-spec and the best program of
    its other sub-specs (fills, packs and stores have exactly one implementation, so this is exact).
    """

    def __init__(self, target: CpuTarget, constants: CostConstants | None = None, top_k: int = 1, table=None):
        if top_k < 1:
            raise ValueError(f"top_k={top_k}: need at least 1")
        self.target, self.top_k, self.table = target, top_k, table
        self.constants = constants or target.constants
        self.memo: dict[Spec, tuple[Program, ...]] = {}
        self._solving: set[Spec] = set()
        self.stats = SearchStats()

    def solve(self, spec: Spec) -> tuple[Program, ...]:
        """The up-to-k cheapest programs for ``spec``, cheapest first (empty if none exists)."""
        spec = canonicalize(spec)
        found = self.memo.get(spec)
        if found is None:
            found = self._from_table(spec)
            if found is None:
                if spec in self._solving:
                    raise RuntimeError(f"rewrite cycle at {spec}: a rewrite produced a sub-spec no smaller")
                self._solving.add(spec)
                found = self._search(spec)
                self._solving.discard(spec)
                self._to_table(spec, found)
            self.memo[spec] = found
        return found

    def _compose(self, spec: Spec, action, children: Sequence[Program]) -> Program:
        cost = action.combine(spec, [c.cost for c in children], self.constants, self.target)
        peak = _peak_with(action.allocation(spec, self.target), children)
        body_signature = children[action.body_index].signature if children else 0
        contribution = action.distinguishes(spec)
        signature = body_signature if contribution is None else hash((contribution, body_signature))
        return Program(spec, action, tuple(children), cost, peak, signature, _family(action, children))

    def _search(self, spec: Spec) -> tuple[Program, ...]:
        if isinstance(spec, Matmul):  # fills and moves are single kernels, not searches
            self.stats.specs_solved += 1
        # Rank by cost first; build Program objects only for the k winners.
        ranked: list[tuple[float, int, object, list[Program]]] = []
        for action in actions_for(spec, self.target):
            solutions = [self.solve(sub) for sub in action.subspecs(spec, self.target)]
            if any(not s for s in solutions):
                continue
            best = [s[0] for s in solutions]
            bodies = solutions[action.body_index] if solutions else [None]
            for body in bodies:
                children = best[: action.body_index] + [body] + best[action.body_index + 1 :] if solutions else []
                cost = action.combine(spec, [c.cost for c in children], self.constants, self.target)
                ranked.append((cost, len(ranked), action, children))
        ranked.sort(key=lambda r: (r[0], r[1]))
        kept: list[Program] = []
        seen: set[int] = set()
        rest = iter(ranked)
        for _, _, action, children in rest:
            program = self._compose(spec, action, children)
            if program.signature not in seen:  # one program per configuration (see Action.distinguishes)
                seen.add(program.signature)
                kept.append(program)
                if len(kept) == self.top_k:
                    break
        return tuple(self._with_every_family(spec, kept, rest))

    def _with_every_family(self, spec: Spec, kept: list[Program], rest) -> list[Program]:
        """The k best, but with the best program of each micro-kernel family the spec admits: a family the cost
        model ranks below k programs of another still gets measured (and calibrated) beside them. The cheapest
        program always stays first."""
        families = {p.family for p in kept}
        for _, _, action, children in rest:
            if len(kept) < 2:
                break
            family = _family(action, children)
            if not family or family in families:
                continue
            counts = {f: sum(p.family == f for p in kept) for f in families}
            crowded = max(counts, key=counts.get)
            if counts[crowded] < 2:
                break  # every kept family has a single program: nothing left to give up
            worst = max(i for i, p in enumerate(kept) if p.family == crowded and i > 0)
            kept[worst] = self._compose(spec, action, children)
            families.add(family)
            kept.sort(key=lambda p: p.cost)
        return kept

    # ---- the persistent, compressed memo table -------------------------------------------------
    def _coordinates(self, spec: Spec):
        if not isinstance(spec, Matmul):
            return None
        # Answers depend on k, the constants and the machine too: a table shared by different searches
        # must never serve one search's answer to another.
        search = (self.top_k, tuple(self.constants.as_vector()), self.target)
        key = ("matmul", search, spec.accumulate, spec.serial_only, spec.lhs, spec.rhs, spec.out)
        return key, (spec.b, spec.m, spec.k, spec.n)

    def _to_table(self, spec: Spec, programs: tuple[Program, ...]) -> None:
        coords = self._coordinates(spec) if self.table is not None else None
        if coords is None:
            return
        key, dims = coords
        entries = tuple((p.action, self._body_rank(p)) for p in programs)
        # The k best found under limits L, whose peaks are at most P, are the k best for every limit in [P, L].
        low = NO_MEMORY
        for program in programs:
            low = low.peak(program.peak)
        self.table.put_box(key, dims + low.as_tuple(), dims + spec.limits.as_tuple(), entries)

    def _body_rank(self, program: Program) -> int:
        if not program.children:
            return 0
        body = program.children[program.action.body_index]
        return self.solve(body.spec).index(body)

    def _from_table(self, spec: Spec) -> tuple[Program, ...] | None:
        coords = self._coordinates(spec) if self.table is not None else None
        if coords is None:
            return None
        key, dims = coords
        entries = self.table.get(key, dims + spec.limits.as_tuple())
        if entries is None:
            return None
        self.stats.served_from_table += 1
        programs = []
        for action, body_rank in entries:
            subs = action.subspecs(spec, self.target)
            children = [self.solve(sub)[body_rank if i == action.body_index else 0] for i, sub in enumerate(subs)]
            programs.append(self._compose(spec, action, children))
        return tuple(programs)


def synthesize(
    spec: Spec,
    target=None,
    *,
    top_k: int = 8,
    constants: CostConstants | None = None,
    table=None,
) -> list[Program]:
    """The ``top_k`` cheapest programs implementing ``spec`` on ``target``, cheapest first."""
    return list(Synthesizer(resolve_target(target), constants, top_k, table).solve(spec))
