"""Shape -> kernel dispatcher: a scikit-learn decision tree, flattened into integer threshold nodes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Node:
    """``feature <= threshold`` goes to ``left`` (both integers), else ``right``; a leaf holds ``kernel``."""

    feature: int = -1
    threshold: int = 0
    left: "Node | None" = None
    right: "Node | None" = None
    kernel: int = -1

    @property
    def is_leaf(self) -> bool:
        return self.left is None

    def to_json(self) -> dict:
        if self.is_leaf:
            return {"kernel": self.kernel}
        return {"feature": self.feature, "threshold": self.threshold,
                "left": self.left.to_json(), "right": self.right.to_json()}

    @classmethod
    def from_json(cls, data: dict) -> "Node":
        if "kernel" in data:
            return cls(kernel=int(data["kernel"]))
        return cls(int(data["feature"]), int(data["threshold"]), cls.from_json(data["left"]), cls.from_json(data["right"]))


@dataclass(frozen=True)
class Region:
    """A leaf's box of variable values, inclusive bounds per feature."""

    kernel: int
    lo: tuple[int, ...]
    hi: tuple[int, ...]


class DispatchTree:
    """Decision tree over the symbolic variables' values (features in ``feature_names`` order) predicting a
    kernel index; sklearn-style ``fit`` / ``predict``, deterministic given ``random_state``."""

    def __init__(self, feature_names: Sequence[str], *, max_depth: int | None = None, random_state: int = 0):
        self.feature_names = tuple(feature_names)
        self.max_depth = max_depth
        self.random_state = random_state

    def fit(self, x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> "DispatchTree":
        labels = np.unique(y)
        if len(labels) == 1:
            self.root_ = Node(kernel=int(labels[0]))
            return self
        from sklearn.tree import DecisionTreeClassifier

        clf = DecisionTreeClassifier(max_depth=self.max_depth, random_state=self.random_state)
        clf.fit(np.asarray(x, dtype=float), np.asarray(y), sample_weight=sample_weight)
        self.root_ = _flatten(clf)
        return self

    @classmethod
    def from_root(cls, feature_names: Sequence[str], root: Node) -> "DispatchTree":
        tree = cls(feature_names)
        tree.root_ = root
        return tree

    def predict_one(self, values: Sequence[int]) -> int:
        node = self.root_
        while not node.is_leaf:
            node = node.left if values[node.feature] <= node.threshold else node.right
        return node.kernel

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.array([self.predict_one([int(v) for v in row]) for row in np.atleast_2d(x)])

    def regions(self, lo: Sequence[int], hi: Sequence[int]) -> list[Region]:
        """Every non-empty leaf box inside the declared ranges [lo, hi]."""
        out: list[Region] = []

        def walk(node: Node, box_lo: list[int], box_hi: list[int]) -> None:
            if any(a > b for a, b in zip(box_lo, box_hi)):
                return
            if node.is_leaf:
                out.append(Region(node.kernel, tuple(box_lo), tuple(box_hi)))
                return
            f, t = node.feature, node.threshold
            walk(node.left, box_lo, [min(h, t) if i == f else h for i, h in enumerate(box_hi)])
            walk(node.right, [max(v, t + 1) if i == f else v for i, v in enumerate(box_lo)], box_hi)

        walk(self.root_, list(lo), list(hi))
        return out

    def kernels_used(self) -> list[int]:
        used: set[int] = set()
        stack = [self.root_]
        while stack:
            node = stack.pop()
            if node.is_leaf:
                used.add(node.kernel)
            else:
                stack += [node.left, node.right]
        return sorted(used)

    def to_json(self) -> dict:
        return {"features": list(self.feature_names), "root": self.root_.to_json()}


def _flatten(clf) -> Node:
    """sklearn's arrays -> Node tree; thresholds t (float) become floor(t) since features are integers."""
    tree = clf.tree_

    def build(i: int) -> Node:
        if tree.children_left[i] < 0:
            return Node(kernel=int(clf.classes_[int(np.argmax(tree.value[i][0]))]))
        left, right = build(int(tree.children_left[i])), build(int(tree.children_right[i]))
        if left.is_leaf and right.is_leaf and left.kernel == right.kernel:
            return left  # sklearn splits on impurity even where both sides pick the same kernel
        return Node(int(tree.feature[i]), int(np.floor(tree.threshold[i])), left, right)

    return build(0)
