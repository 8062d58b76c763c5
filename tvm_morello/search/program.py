"""A synthesised program: a tree of rewrites over specs, ending in micro-kernels."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from ..spec import MemoryLimits, Spec
from .rewrites import Action, PackRhs, RegisterOut, Select


@dataclass(frozen=True)
class Program:
    """``action`` applied to ``spec``; ``children`` implement its sub-specs; ``peak`` is memory used."""

    spec: Spec
    action: Action
    children: tuple["Program", ...]
    cost: float
    peak: MemoryLimits
    signature: int = 0  # equal for programs of the same configuration (see Action.distinguishes)
    family: str = ""  # the micro-kernel its main path ends in (what top-k keeps one of each of)

    def walk(self) -> Iterator["Program"]:
        """Pre-order traversal."""
        yield self
        for child in self.children:
            yield from child.walk()

    def main_path(self) -> Iterator["Program"]:
        """The chain from the root through each rewrite's body down to the matmul kernel."""
        node = self
        while True:
            yield node
            if not node.children:
                return
            node = node.children[node.action.body_index]

    def register_tile(self) -> tuple[int, int] | None:
        """(MR, NR) of the register-resident output tile, if the program keeps one."""
        for node in self.main_path():
            if isinstance(node.action, RegisterOut):
                return node.spec.m, node.spec.n
        return None

    @property
    def packs_rhs(self) -> int:
        """Panel width the program packs the rhs into, or 0."""
        for node in self.main_path():
            if isinstance(node.action, PackRhs):
                return node.action.width
        return 0

    def configuration(self) -> tuple:
        """What distinguishes programs for measurement: register tile, packing, parallel tiles, kernel."""
        parallel = tuple(
            (n.spec.b // n.action.b, n.spec.m // n.action.m, n.spec.n // n.action.n)
            for n in self.main_path()
            if getattr(n.action, "parallel", False)
        )
        return (self.register_tile(), self.packs_rhs, parallel, self.kernel)

    @property
    def kernel(self) -> str:
        leaf = list(self.main_path())[-1]
        return str(leaf.action.kernel) if isinstance(leaf.action, Select) else "?"

    def tree_key(self) -> tuple:
        """The program's rewrites and specs, without costs: equal for one program whatever the constants."""
        return (str(self.action), self.spec, tuple(child.tree_key() for child in self.children))

    def render(self, indent: int = 0) -> str:
        """An indented tree, one line per rewrite, with its spec and modelled cost."""
        pad = "  " * indent
        lines = [f"{pad}{self.action}  # {self.spec}  cost={self.cost:,.0f}"]
        lines += [child.render(indent + 1) for child in self.children]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()
