"""Morello's memo table: specs' solutions stored as boxes of neighbouring points that share a value.

Lookups answer exactly what an uncompressed ``dict`` would; only the storage is compressed.
"""
from __future__ import annotations

import bisect
import operator
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Iterator, Union

from ..errors import MorelloError

Point = tuple[int, ...]

_FILE_FORMAT = "tvm-morello.MemoTable"
_FILE_VERSION = 1
_CUT_SAMPLE = 64  # boxes sampled to choose where to cut a large set of boxes
_POINTS_PER_LEAF = 256  # single points a leaf holds before it is cut (they are found by hashing)
_ANSWERS_CACHED = 1 << 16  # recent lookups remembered (all keys together) before starting over
_MIN_PUTS_BEFORE_REBUILD = 256
_MAX_REBUILD_BACKOFF = 4


class MemoTableError(MorelloError, ValueError):
    """A request the memo table cannot store or answer (e.g. a ``None`` value)."""


class InvalidPointError(MemoTableError):
    """A point or box that is not non-negative ints of its key's length, or a box with lo > hi."""


class TableFileError(MemoTableError):
    """A file that is not a memo table saved by a supported version of ``MemoTable.save``."""


@dataclass(frozen=True, slots=True)
class Box:
    """Every point p with ``lo <= p <= hi`` (each coordinate, inclusive) holds ``value``."""

    lo: Point
    hi: Point
    value: Any

    @property
    def volume(self) -> int:
        """Number of points in the box; the table's ``len`` is the sum over its disjoint boxes."""
        volume = 1
        for low, high in zip(self.lo, self.hi):
            volume *= high - low + 1
        return volume

    def contains(self, point: Point) -> bool:
        """Whether ``point`` lies in the box."""
        for low, coord, high in zip(self.lo, point, self.hi):
            if coord < low or coord > high:
                return False
        return True

    def covers(self, other: Box) -> bool:
        """Whether every point of ``other`` lies in this box."""
        return self.contains(other.lo) and self.contains(other.hi)

    def intersects(self, other: Box) -> bool:
        """Whether the two boxes share at least one point."""
        for a_lo, a_hi, b_lo, b_hi in zip(self.lo, self.hi, other.lo, other.hi):
            if a_hi < b_lo or b_hi < a_lo:
                return False
        return True

    def overlap_volume(self, other: Box) -> int:
        """Number of points two intersecting boxes share."""
        volume = 1
        for a_lo, a_hi, b_lo, b_hi in zip(self.lo, self.hi, other.lo, other.hi):
            volume *= min(a_hi, b_hi) - max(a_lo, b_lo) + 1
        return volume

    def minus(self, other: Box) -> list[Box]:
        """The points of this box outside ``other`` (which it intersects), as <= 2 * rank boxes.

        Peels the slab below and the slab above ``other`` in each dimension, shrinking the rest.
        """
        lo, hi = self.lo, self.hi
        pieces = []
        for dim, (cut_lo, cut_hi) in enumerate(zip(other.lo, other.hi)):
            if lo[dim] < cut_lo:
                pieces.append(Box(lo, _replaced(hi, dim, cut_lo - 1), self.value))
                lo = _replaced(lo, dim, cut_lo)
            if hi[dim] > cut_hi:
                pieces.append(Box(_replaced(lo, dim, cut_hi + 1), hi, self.value))
                hi = _replaced(hi, dim, cut_hi)
        return pieces

    def merged_with(self, other: Box) -> Box | None:
        """The union of two disjoint boxes if it is itself a box holding one value, else ``None``."""
        if self.value != other.value:
            return None
        touching_dim = None
        for dim, (a_lo, a_hi, b_lo, b_hi) in enumerate(zip(self.lo, self.hi, other.lo, other.hi)):
            if a_lo == b_lo and a_hi == b_hi:
                continue
            if touching_dim is not None or (a_hi + 1 != b_lo and b_hi + 1 != a_lo):
                return None
            touching_dim = dim
        if touching_dim is None:
            return None
        return Box(tuple(map(min, self.lo, other.lo)), tuple(map(max, self.hi, other.hi)), self.value)

    def split_at(self, dim: int, cut: int) -> tuple[Box | None, Box | None]:
        """The parts of the box whose coordinate ``dim`` is below ``cut``, and at or above it."""
        if self.hi[dim] < cut:
            return self, None
        if self.lo[dim] >= cut:
            return None, self
        below = Box(self.lo, _replaced(self.hi, dim, cut - 1), self.value)
        above = Box(_replaced(self.lo, dim, cut), self.hi, self.value)
        return below, above


@dataclass(frozen=True)
class TableStats:
    """How well the table compresses: ``compression_ratio`` is points per stored box (0 when empty)."""

    points: int
    boxes: int
    leaves: int
    compression_ratio: float


def _replaced(coords: Point, dim: int, coord: int) -> Point:
    return coords[:dim] + (coord,) + coords[dim + 1 :]


class _Leaf:
    """A region of one key's space: single points in a dict, larger boxes in a short list.

    The points and boxes are disjoint, and no two of them form a box holding one value (they would
    have been merged). Points need no scan to be found, so a leaf may hold many of them.
    ``version`` grows whenever the contents change and is -1 once the leaf has left its tree, so a
    cached answer recorded with a leaf and its version is still right exactly when they match.
    """

    __slots__ = ("boxes", "points", "version")

    def __init__(self, boxes: Iterable[Box] = ()) -> None:
        """A leaf holding ``boxes``; single points are taken as they are (not merged with each other)."""
        self.boxes: list[Box] = []
        self.points: dict[Point, Any] = {}
        self.version = 0
        larger = []
        for box in boxes:
            if box.lo == box.hi:
                self.points[box.lo] = box.value
            else:
                larger.append(box)
        for box in larger:
            self.add(box)

    def box_count(self) -> int:
        return len(self.boxes) + len(self.points)

    def all_boxes(self) -> list[Box]:
        return self.boxes + [Box(point, point, value) for point, value in self.points.items()]

    def value_at(self, point: Point) -> Any | None:
        """The value stored at ``point`` (which lies in this leaf's region), or ``None``."""
        value = self.points.get(point)
        if value is None:
            for box in self.boxes:
                for low, coord, high in zip(box.lo, point, box.hi):
                    if coord < low or coord > high:
                        break
                else:
                    return box.value
        return value

    def store(self, new: Box) -> int:
        """Make ``new`` hold over its points, carving it out of older boxes; returns points gained."""
        if self._already_holds(new):
            return 0
        gained = new.volume - self._carve_out(new)
        self.add(new)
        self.version += 1
        return gained

    def over(self, capacity: int) -> bool:
        """Whether lookups here would scan more than ``capacity`` boxes, or the point dict is large."""
        return len(self.boxes) > capacity or len(self.points) > _POINTS_PER_LEAF

    def _already_holds(self, new: Box) -> bool:
        if new.lo == new.hi and self.points.get(new.lo) == new.value:
            return True
        return any(box.value == new.value and box.covers(new) for box in self.boxes)

    def _carve_out(self, new: Box) -> int:
        """Drop every point of ``new`` from the leaf, keeping the rest of what it overlapped;
        returns how many points were dropped."""
        dropped = 0
        kept, pieces = [], []
        for box in self.boxes:
            if box.intersects(new):
                dropped += box.overlap_volume(new)
                pieces.extend(box.minus(new))
            else:
                kept.append(box)
        self.boxes = kept
        for point in self._points_in(new):
            del self.points[point]
            dropped += 1
        for piece in pieces:
            self.add(piece)
        return dropped

    def _points_in(self, box: Box) -> list[Point]:
        if box.lo == box.hi:
            return [box.lo] if box.lo in self.points else []
        return [point for point in self.points if box.contains(point)]

    def add(self, box: Box) -> None:
        """Add ``box`` (disjoint from the leaf's), merging it with every box or point whose union
        with it is a box."""
        union = self._merged_with_neighbour(box)
        while union is not None:
            box = union
            union = self._merged_with_neighbour(box)
        if box.lo == box.hi:
            self.points[box.lo] = box.value
        else:
            self.boxes.append(box)

    def _merged_with_neighbour(self, box: Box) -> Box | None:
        """The union of ``box`` with a box or point it merges with (which is removed), if any."""
        for index, other in enumerate(self.boxes):
            union = box.merged_with(other)
            if union is not None:
                del self.boxes[index]
                return union
        for neighbour in _end_neighbours(box):
            if self.points.get(neighbour) == box.value:
                del self.points[neighbour]
                return box.merged_with(Box(neighbour, neighbour, box.value))
        return None

    def split_if_over(self, capacity: int) -> _Node:
        """This leaf, or a subtree of smaller leaves holding the same boxes when it is over."""
        if not self.over(capacity):
            return self
        self.version = -1
        return _tree_of(self.all_boxes(), capacity)


class _Split:
    """Points whose coordinate ``dim`` is below ``cut`` live under ``low``, the others under ``high``."""

    __slots__ = ("dim", "cut", "low", "high")

    def __init__(self, dim: int, cut: int, low: _Node, high: _Node) -> None:
        self.dim, self.cut, self.low, self.high = dim, cut, low, high


_Node = Union[_Leaf, _Split]
_RETIRED_LEAF = _Leaf()
_RETIRED_LEAF.version = -1
_NOT_CACHED = (_RETIRED_LEAF, 0, None)


def _end_neighbours(box: Box) -> Iterator[Point]:
    """The points that extend ``box`` by one along a dimension while keeping it a box."""
    long_dims = [dim for dim, (low, high) in enumerate(zip(box.lo, box.hi)) if low != high]
    if len(long_dims) > 1:
        return
    for dim in long_dims or range(len(box.lo)):
        if box.lo[dim] > 0:
            yield _replaced(box.lo, dim, box.lo[dim] - 1)
        yield _replaced(box.hi, dim, box.hi[dim] + 1)


def _balanced_cut(boxes: list[Box]) -> tuple[int, int] | None:
    """A (dim, coordinate) at a box boundary that leaves each side fewer boxes, best balanced.

    A box crossing the cut counts on both sides, since it will be split in two. Median boundaries
    are tried first, then all; large sets are judged on an evenly spaced sample.
    """
    sample = boxes[:: max(1, len(boxes) // _CUT_SAMPLE)]
    return _best_cut(sample, _median_boundaries) or _best_cut(sample, _all_boundaries)


def _median_boundaries(lows: list[int], highs: list[int]) -> Iterable[int]:
    return lows[len(lows) // 2], highs[len(highs) // 2]


def _all_boundaries(lows: list[int], highs: list[int]) -> Iterable[int]:
    return set(lows) | set(highs)


_Boundaries = Callable[[list[int], list[int]], Iterable[int]]


def _best_cut(boxes: list[Box], boundaries: _Boundaries) -> tuple[int, int] | None:
    """The best-balanced cut among ``boundaries(lows, highs)`` of each dimension, where ``lows``
    are the boxes' sorted lower bounds and ``highs`` their sorted upper bounds plus one."""
    count = len(boxes)
    best, best_load = None, count
    for dim in range(len(boxes[0].lo)):
        lows = sorted(box.lo[dim] for box in boxes)
        highs = sorted(box.hi[dim] + 1 for box in boxes)
        for coord in boundaries(lows, highs):
            if lows[0] < coord < highs[-1]:
                load = max(bisect.bisect_left(lows, coord), count - bisect.bisect_right(highs, coord))
                if load < best_load:
                    best, best_load = (dim, coord), load
    return best


def _split_boxes(boxes: list[Box], dim: int, cut: int) -> tuple[list[Box], list[Box]]:
    below, above = [], []
    for box in boxes:
        low_part, high_part = box.split_at(dim, cut)
        if low_part is not None:
            below.append(low_part)
        if high_part is not None:
            above.append(high_part)
    return below, above


def _rejoined_if_small(node: _Split) -> _Node:
    """One leaf instead of ``node`` once its two leaves hold one box between them.

    A region cut while it was patchy is thereby merged back once it has been filled.
    """
    low, high = node.low, node.high
    if low.__class__ is _Leaf and high.__class__ is _Leaf and low.box_count() + high.box_count() <= 2:
        joined = _Leaf()
        for box in low.all_boxes() + high.all_boxes():
            joined.add(box)
        if joined.box_count() == 1:
            low.version = high.version = -1
            return joined
    return node


def _inserted(node: _Node, box: Box, capacity: int) -> tuple[_Node, int]:
    """The subtree after storing ``box`` into ``node``, and how many new points it gained."""
    if node.__class__ is _Leaf:
        gained = node.store(box)
        return node.split_if_over(capacity), gained
    low_part, high_part = box.split_at(node.dim, node.cut)
    gained_low = gained_high = 0
    if low_part is not None:
        node.low, gained_low = _inserted(node.low, low_part, capacity)
    if high_part is not None:
        node.high, gained_high = _inserted(node.high, high_part, capacity)
    return _rejoined_if_small(node), gained_low + gained_high


def _tree_of(boxes: list[Box], capacity: int) -> _Node:
    """A tree over disjoint ``boxes`` whose leaves are not over ``capacity``, cut at box boundaries.

    Cuts balance the larger boxes while they are too many for one leaf, else the single points.
    """
    larger = [box for box in boxes if box.lo != box.hi]
    if len(larger) > capacity:
        cut = _balanced_cut(larger)
    elif len(boxes) - len(larger) > _POINTS_PER_LEAF:
        cut = _balanced_cut([box for box in boxes if box.lo == box.hi])
    else:
        cut = None
    if cut is None:
        return _Leaf(boxes)
    below, above = _split_boxes(boxes, *cut)
    return _Split(*cut, _tree_of(below, capacity), _tree_of(above, capacity))


def _leaves(node: _Node) -> Iterator[_Leaf]:
    stack = [node]
    while stack:
        node = stack.pop()
        if node.__class__ is _Split:
            stack.extend((node.high, node.low))
        else:
            yield node


def _slab_form(boxes: list[tuple[Point, Point]]) -> list[tuple[Point, Point]]:
    """Boxes covering the same points as the disjoint ``boxes``, in a form fixed by those points.

    Sweeps the first dimension, cutting it into maximal runs over which the cross-section stays the
    same, and writes each cross-section in slab form recursively.
    """
    if not boxes or not boxes[0][0]:
        return boxes[:1]
    bounds = sorted({lo[0] for lo, _ in boxes} | {hi[0] + 1 for _, hi in boxes})
    by_start = sorted(boxes)
    active: list[tuple[Point, Point]] = []
    runs: list[tuple[int, int, tuple]] = []
    next_box = 0
    for start, stop in zip(bounds, bounds[1:]):
        while next_box < len(by_start) and by_start[next_box][0][0] == start:
            active.append(by_start[next_box])
            next_box += 1
        active = [(lo, hi) for lo, hi in active if hi[0] >= start]
        section = tuple(sorted(_slab_form([(lo[1:], hi[1:]) for lo, hi in active])))
        if runs and runs[-1][2] == section and runs[-1][1] == start - 1:
            runs[-1] = (runs[-1][0], stop - 1, section)
        else:
            runs.append((start, stop - 1, section))
    return [((start, *lo), (end, *hi)) for start, end, section in runs for lo, hi in section]


def _compacted(boxes: list[Box]) -> list[Box]:
    """``boxes`` with each value's share re-tiled in slab form where that takes fewer boxes."""
    by_value: dict[Any, list[Box]] = {}
    for box in boxes:
        by_value.setdefault(box.value, []).append(box)
    compacted = []
    for value, same_valued in by_value.items():
        if _may_retile_smaller(same_valued):
            slabs = _slab_form([(box.lo, box.hi) for box in same_valued])
            if len(slabs) < len(same_valued):
                same_valued = [Box(lo, hi, value) for lo, hi in slabs]
        compacted.extend(same_valued)
    return compacted


def _may_retile_smaller(boxes: list[Box]) -> bool:
    """False when ``boxes`` are single points none of which neighbours another: each is then a
    separate part of their union, so no re-tiling needs fewer boxes. True otherwise (cheap guess)."""
    if len(boxes) < 2:
        return False
    if any(box.lo != box.hi for box in boxes):
        return True
    points = {box.lo for box in boxes}
    return any(neighbour in points for box in boxes for neighbour in _end_neighbours(box))


def _as_point(coords: Any) -> Point:
    """``coords`` as a tuple of non-negative Python ints, or InvalidPointError naming it."""
    try:
        if coords.__class__ is tuple and (not coords or (min(coords) >= 0 and sum(coords).__class__ is int)):
            return coords
    except TypeError:
        pass
    try:
        point = tuple(operator.index(coord) for coord in coords)
    except TypeError:
        raise InvalidPointError(f"point {coords!r} is not a tuple of ints") from None
    if any(coord < 0 for coord in point):
        raise InvalidPointError(f"point {coords!r} has a negative coordinate; coordinates must be >= 0")
    return point


class _KeySpace:
    """One key's points: their common length and the k-d tree of leaves holding their boxes.

    Merging boxes pairwise as they arrive depends on their order, so the boxes are re-tiled in slab
    form once the key has taken as many puts as it held boxes, times a back-off (doubling up to
    ``_MAX_REBUILD_BACKOFF`` while re-tiling gains little): amortised O(1) boxes re-tiled per put.
    """

    __slots__ = ("rank", "root", "answers", "puts_since_rebuild", "rebuild_backoff", "rebuild_after")

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.root: _Node = _Leaf()
        self.answers: dict[Point, tuple[_Leaf, int, Any]] = {}  # recent lookups: leaf, its version, value
        self.puts_since_rebuild = 0
        self.rebuild_backoff = 1
        self.rebuild_after = _MIN_PUTS_BEFORE_REBUILD

    def boxes(self) -> list[Box]:
        return [box for leaf in _leaves(self.root) for box in leaf.all_boxes()]

    def store(self, box: Box, capacity: int) -> int:
        """Store ``box``, rebuilding when due; returns how many new points the key gained."""
        self.root, gained = _inserted(self.root, box, capacity)
        self.puts_since_rebuild += 1
        if self.puts_since_rebuild >= self.rebuild_after:
            self.rebuild(capacity)
        return gained

    def leaf_at(self, point: Point) -> _Leaf:
        node = self.root
        while node.__class__ is _Split:
            node = node.low if point[node.dim] < node.cut else node.high
        return node

    def rebuild(self, capacity: int) -> None:
        """Re-tile the boxes in slab form under a freshly cut tree, if that leaves fewer boxes."""
        boxes = self.boxes()
        compacted = _compacted(boxes)
        if len(compacted) < len(boxes):
            root = _tree_of(compacted, capacity)
            if sum(leaf.box_count() for leaf in _leaves(root)) < len(boxes):
                for leaf in _leaves(self.root):
                    leaf.version = -1
                self.root = root
        count = self.box_count()
        gained_little = count > 0.9 * len(boxes)
        self.rebuild_backoff = min(2 * self.rebuild_backoff, _MAX_REBUILD_BACKOFF) if gained_little else 1
        self.rebuild_after = max(_MIN_PUTS_BEFORE_REBUILD, self.rebuild_backoff * count)
        self.puts_since_rebuild = 0

    def box_count(self) -> int:
        return sum(leaf.box_count() for leaf in _leaves(self.root))


class MemoTable:
    """Maps ``(key, point)`` to a value, storing neighbouring points with equal values as one box.

    Each key has its own space of points (tuples of non-negative ints, one length per key), kept as a
    k-d tree of leaves; a leaf scans at most ``leaf_capacity`` boxes and hashes its single points. A
    stored box is carved out of the boxes it overwrites and merged with the equal-valued boxes it
    forms a box with; a full leaf is cut in two at a box boundary. Cuts follow the boxes rather than a
    fixed grid of pages, so a box spanning [0, 2**20] along a memory limit stays one box.
    Greedy merging depends on the order of puts, so each key is re-tiled from time to time (see
    ``compact``); recent lookups are cached and stay exact across puts.
    """

    def __init__(self, leaf_capacity: int = 8) -> None:
        """``leaf_capacity`` bounds the boxes scanned per lookup; larger merges more, looks up slower."""
        if leaf_capacity < 2:
            raise MemoTableError(f"leaf_capacity {leaf_capacity!r} must be at least 2")
        self.leaf_capacity = leaf_capacity
        self._spaces: dict[Hashable, _KeySpace] = {}
        self._points = 0
        self._answers_cached = 0

    def put(self, key: Hashable, point: Point, value: Any) -> None:
        """Store ``value`` for ``point``, replacing whatever the point held."""
        self.put_box(key, point, point, value)

    def put_box(self, key: Hashable, lo: Point, hi: Point, value: Any) -> None:
        """Store ``value`` for every point of the inclusive box ``lo..hi``, e.g. a solution found
        under memory limit L with peak use P, which is optimal for every limit in [P, L]."""
        if value is None:
            raise MemoTableError(f"cannot store None under key {key!r}: get returns None for absent points")
        lo, hi = _as_point(lo), _as_point(hi)
        if len(lo) != len(hi) or any(low > high for low, high in zip(lo, hi)):
            raise InvalidPointError(
                f"box {lo!r}..{hi!r} is empty or mixes lengths; need lo <= hi in every coordinate"
            )
        space = self._spaces.get(key)
        if space is None:
            space = self._spaces[key] = _KeySpace(len(lo))
        _check_rank(key, lo, space)
        self._points += space.store(Box(lo, hi, value), self.leaf_capacity)

    def get(self, key: Hashable, point: Point) -> Any | None:
        """The value stored for ``point`` under ``key``, or ``None`` if none was stored."""
        space = self._spaces.get(key)
        if space is None:
            _as_point(point)
            return None
        try:
            leaf, version, value = space.answers.get(point, _NOT_CACHED)
            if leaf.version == version and sum(point).__class__ is int:  # not (1.0, 2.0) equal to (1, 2)
                return value
        except TypeError:  # an unhashable point, e.g. a list
            pass
        point = _as_point(point)
        _check_rank(key, point, space)
        leaf = space.leaf_at(point)
        value = leaf.value_at(point)
        self._remember(space, point, leaf, value)
        return value

    def _remember(self, space: _KeySpace, point: Point, leaf: _Leaf, value: Any | None) -> None:
        """Cache an answer; all keys' caches start over once they hold too many between them."""
        if self._answers_cached >= _ANSWERS_CACHED:
            for each_space in self._spaces.values():
                each_space.answers.clear()
            self._answers_cached = 0
        space.answers[point] = (leaf, leaf.version, value)
        self._answers_cached += 1

    def __contains__(self, key_and_point: tuple[Hashable, Point]) -> bool:
        """Whether ``(key, point) in table``, i.e. a value was stored for the point."""
        key, point = key_and_point
        return self.get(key, point) is not None

    def __len__(self) -> int:
        """Number of distinct points stored (a box counts its volume)."""
        return self._points

    def keys(self) -> list[Hashable]:
        """The keys holding at least one point, in the order they were first stored."""
        return list(self._spaces)

    def boxes(self, key: Hashable) -> list[Box]:
        """The disjoint boxes stored for ``key`` (empty for an unknown key), for inspection."""
        space = self._spaces.get(key)
        return space.boxes() if space is not None else []

    def compact(self) -> None:
        """Re-tile every key's boxes now (rebuilds also happen on their own); answers do not change."""
        for space in self._spaces.values():
            space.rebuild(self.leaf_capacity)

    def stats(self) -> TableStats:
        """Points stored, the boxes and leaves holding them, and points per box."""
        leaves = [leaf for space in self._spaces.values() for leaf in _leaves(space.root)]
        boxes = sum(leaf.box_count() for leaf in leaves)
        ratio = self._points / boxes if boxes else 0.0
        return TableStats(points=self._points, boxes=boxes, leaves=len(leaves), compression_ratio=ratio)

    def save(self, path: str | os.PathLike) -> None:
        """Write the boxes to ``path`` as a pickle with a format name and version, atomically.

        Keys and values must be picklable; as with any pickle, load only files you trust.
        """
        path = Path(path)
        payload = {
            "format": _FILE_FORMAT,
            "version": _FILE_VERSION,
            "leaf_capacity": self.leaf_capacity,
            "spaces": [
                (key, space.rank, [(box.lo, box.hi, box.value) for box in space.boxes()])
                for key, space in self._spaces.items()
            ],
        }
        partial = path.with_name(path.name + ".partial")
        with open(partial, "wb") as file:
            pickle.dump(payload, file, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> MemoTable:
        """The table saved at ``path`` by ``save``; it answers every ``get`` as the saved table did."""
        payload = _read_payload(Path(path))
        table = cls(payload["leaf_capacity"])
        for key, rank, boxes in payload["spaces"]:
            space = table._spaces[key] = _KeySpace(rank)
            stored = [Box(lo, hi, value) for lo, hi, value in boxes]
            space.root = _tree_of(stored, table.leaf_capacity)
            table._points += sum(box.volume for box in stored)
        return table


def _check_rank(key: Hashable, point: Point, space: _KeySpace) -> None:
    if len(point) != space.rank:
        raise InvalidPointError(
            f"point {point!r} has {len(point)} coordinates but key {key!r} holds points of {space.rank}"
        )


def _read_payload(path: Path) -> dict:
    try:
        with open(path, "rb") as file:
            payload = pickle.load(file)
    except (pickle.UnpicklingError, EOFError) as error:
        raise TableFileError(f"{path} is not a saved MemoTable: {error}") from None
    if not isinstance(payload, dict) or payload.get("format") != _FILE_FORMAT:
        raise TableFileError(f"{path} is not a saved MemoTable (no {_FILE_FORMAT!r} header)")
    if payload.get("version") != _FILE_VERSION:
        raise TableFileError(
            f"{path} holds MemoTable file version {payload.get('version')!r}; supported: {_FILE_VERSION}"
        )
    return payload
