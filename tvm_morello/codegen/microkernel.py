"""The register tile a shape-generic kernel is built around: MR x NR outputs kept in vector registers."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..target import CpuTarget

RESERVED_VREGS = 4  # broadcast register and rhs vectors LLVM keeps live beside the accumulators
# Every micro-kernel schedule annotates its matmul block with the kernel's key, so a database record says which
# kernel it measured (kernels of one MR share their unscheduled workload, whatever their NR or parallelism).
MICRO_ANNOTATION = "morello_microkernel"


@dataclass(frozen=True, order=True)
class MicroKernel:
    """An MR x NR output tile kept in vector registers.

    The default (outer-product) form broadcasts A and multiplies NR-wide vectors of packed B panels; NR is
    a multiple of the vector lanes. The ``dot`` form keeps one k-vector accumulator per output and sums it
    at the end: it reads B[n, k] rows as they are, so tiny ``A Bᵀ`` shapes (attention scores at short
    sequences) skip packing NR-wide panels they would mostly pad. ``parallel`` spreads work units over the
    cores; a serial kernel avoids the thread pool's wake-up for tiny shapes.
    """

    mr: int
    nr: int
    parallel: bool = True
    dot: bool = False

    @property
    def key(self) -> str:
        return ("dot_" if self.dot else "") + f"mr{self.mr}_nr{self.nr}" + ("" if self.parallel else "_serial")

    @classmethod
    def from_key(cls, key: str) -> "MicroKernel":
        found = re.fullmatch(r"(dot_)?mr(\d+)_nr(\d+)(_serial)?", key)
        if found is None:
            raise ValueError(f"micro-kernel key {key!r}: expected [dot_]mrMR_nrNR[_serial]")
        return cls(int(found.group(2)), int(found.group(3)), found.group(4) is None, found.group(1) is not None)

    def accumulators(self, lanes: int) -> int:
        return self.mr * self.nr if self.dot else self.mr * self.nr // lanes

    def fits(self, target: CpuTarget) -> bool:
        lanes = target.lanes()
        return (self.dot or self.nr % lanes == 0) and self.accumulators(lanes) + RESERVED_VREGS <= target.vector_registers


def record_microkernel(record) -> MicroKernel | None:
    """The micro-kernel a meta-schedule record measured, read from the annotation its trace made (None: not one)."""
    found = re.search(rf'ann_key="{MICRO_ANNOTATION}", ann_val="([a-z0-9_]+)"', str(record.trace))
    return MicroKernel.from_key(found.group(1)) if found else None
