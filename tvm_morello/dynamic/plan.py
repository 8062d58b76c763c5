"""What tuning decided for one operator: its kernels, the tree that picks among them, and why."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..codegen.microkernel import MicroKernel
from ..spec.symbolic import DynamicWorkload
from .dispatch import DispatchTree

# A dispatcher taking a dense layer's activation as the model holds it, [d0, ..., k], is named by its rank after
# this (a Relax reshape to [m, k] and back cost the VM six instructions per call: 42 of a BERT layer's 165).
RANK_SUFFIX = "__rank"


@dataclass(frozen=True, eq=False)
class OperatorPlan:
    """``tree`` maps the workload's variable values (in ``workload.var_names`` order) to an index into
    ``kernels``; ``panel`` is the width weights are packed in; ``provenance`` records the tuning."""

    workload: DynamicWorkload
    panel: int
    kernels: tuple[MicroKernel, ...]
    tree: DispatchTree
    provenance: dict = field(default_factory=dict)

    def kernel_name(self, index: int) -> str:
        return f"{self.workload.name}__{self.kernels[index].key}"

    @property
    def entry(self) -> str:
        return self.workload.name

    @property
    def dispatcher(self) -> str:
        """The TIR function (a, b, out) the entry calls: range check, tree, kernel call."""
        return f"{self.workload.name}__dispatch"

    def dispatcher_with(self, epilogue) -> str:
        """The dispatcher whose kernels finish their output with ``epilogue`` (a ``spec.epilogue.Epilogue``)."""
        return f"{self.dispatcher}__{epilogue.key}"

    def dispatcher_for(self, epilogue=None, rank: int = 2) -> str:
        """The dispatcher (with ``epilogue``, if any) of a dense layer whose activation has ``rank`` dimensions,
        the leading ones merged into m inside it (``RANK_SUFFIX``)."""
        base = self.dispatcher if epilogue is None else self.dispatcher_with(epilogue)
        return base if rank == 2 else f"{base}{RANK_SUFFIX}{rank}"

    @property
    def pack_entry(self) -> str | None:
        return f"{self.workload.name}_pack_weights" if self.workload.constant_b else None


def dispatcher_rank(symbol: str) -> tuple[str, int]:
    """(the dispatcher's name without its rank, the rank): ``OperatorPlan.dispatcher_for`` read back."""
    base, suffix, rank = symbol.rpartition(RANK_SUFFIX)
    return (base, int(rank)) if suffix and rank.isdigit() else (symbol, 2)
