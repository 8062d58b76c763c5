"""MemoTable answers exactly as a plain dict would, compresses equal neighbours, and survives disk."""
import itertools
import pickle
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tvm_morello.search.table import InvalidPointError, MemoTable, MemoTableError, TableFileError

SIDE = 8  # coordinates 0..7 in the property tests
BIG = 1 << 17  # scale for the large-coordinate test: boxes up to 8 * 2**17 = 2**20


def _box_points(lo, hi):
    return itertools.product(*(range(low, high + 1) for low, high in zip(lo, hi)))


def _operations(rank: int):
    coord = st.integers(0, SIDE - 1)
    point = st.tuples(*[coord] * rank)
    value = st.sampled_from(["a", "b", "c"])  # few values, so merges happen
    extent = st.tuples(*[st.integers(0, SIDE - 1)] * rank)
    put = st.tuples(st.just("put"), point, value)
    put_box = st.tuples(st.just("box"), point, extent, value)
    get = st.tuples(st.just("get"), point)
    compact = st.tuples(st.just("compact"))
    return st.lists(st.one_of(put, put, put_box, get, get, compact), max_size=60)


@st.composite
def _scripts(draw):
    rank = draw(st.sampled_from([2, 3]))
    return rank, draw(st.sampled_from([2, 3, 8])), draw(_operations(rank))


def _cells(lo, hi, scale: int):
    """The box of coordinates covering cells ``lo..hi`` when each cell is ``scale`` wide."""
    return tuple(c * scale for c in lo), tuple(c * scale + scale - 1 for c in hi)


def _run(table: MemoTable, script, scale: int = 1) -> dict:
    """Apply ``script`` to ``table`` and to a dict of cells (each ``scale`` coordinates wide per
    dimension); checks gets along the way."""
    reference = {}
    for operation in script:
        if operation[0] == "put" and scale == 1:
            _, point, value = operation
            table.put("k", point, value)
            reference[point] = value
        elif operation[0] == "put":  # a whole cell of scale**rank points
            _, point, value = operation
            table.put_box("k", *_cells(point, point, scale), value)
            reference[point] = value
        elif operation[0] == "box":
            _, lo, extent, value = operation
            hi = tuple(min(SIDE - 1, low + size) for low, size in zip(lo, extent))
            table.put_box("k", *_cells(lo, hi, scale), value)
            reference.update(dict.fromkeys(_box_points(lo, hi), value))
        elif operation[0] == "get":
            _, point = operation
            assert table.get("k", tuple(c * scale for c in point)) == reference.get(point)
        else:
            table.compact()
    return reference


@settings(max_examples=300, deadline=None)
@given(_scripts())
def test_answers_like_a_dict(script):
    rank, capacity, operations = script
    table = MemoTable(capacity)
    reference = _run(table, operations)
    for point in itertools.product(range(SIDE), repeat=rank):
        assert table.get("k", point) == reference.get(point), point
        assert (("k", point) in table) == (point in reference)
    assert len(table) == len(reference)
    boxes = table.boxes("k")
    assert sum(box.volume for box in boxes) == len(reference)
    for first, second in itertools.combinations(boxes, 2):
        assert not first.intersects(second), (first, second)
    assert table.stats().boxes == len(boxes)


@settings(max_examples=40, deadline=None)
@given(_scripts())
def test_answers_like_a_dict_at_coordinates_up_to_2_pow_20(script):
    """Each cell of the small grid becomes a run of 2**17 coordinates; probe both ends and the middle."""
    rank, capacity, operations = script
    table = MemoTable(capacity)
    reference = _run(table, operations, scale=BIG)
    offsets = (0, BIG // 2, BIG - 1)
    for cell in itertools.product(range(SIDE), repeat=rank):
        for offset in offsets:
            point = tuple(c * BIG + offset for c in cell)
            assert table.get("k", point) == reference.get(cell), point
    assert len(table) == len(reference) * BIG**rank


def test_overwriting_inside_a_box_carves_it():
    table = MemoTable()
    table.put_box("k", (0, 0), (9, 9), "old")
    table.put("k", (4, 5), "new")
    assert table.get("k", (4, 5)) == "new"
    assert table.get("k", (4, 4)) == table.get("k", (5, 5)) == table.get("k", (3, 5)) == "old"
    assert len(table) == 100
    assert table.stats().boxes <= 1 + 2 * 2  # the point, and at most 2 * rank pieces of the old box


def test_answers_stay_exact_after_repeated_lookups():
    """Recent lookups are cached; a put must never leave a stale answer behind."""
    table = MemoTable(leaf_capacity=2)
    assert table.get("k", (3, 3)) is None
    table.put("k", (3, 3), 1)
    assert table.get("k", (3, 3)) == 1
    table.put_box("k", (0, 0), (7, 7), 2)
    assert table.get("k", (3, 3)) == 2
    for i in range(8):  # enough puts to cut and rejoin leaves
        table.put("k", (i, 7 - i), 3)
        assert table.get("k", (i, 7 - i)) == 3
    assert table.get("k", (3, 3)) == 2
    table.compact()
    assert table.get("k", (3, 4)) == 3


def test_answers_stay_exact_when_leaves_rejoin():
    """A cached answer from a leaf that was merged into its sibling must not outlive it."""
    for layout in ([(0, 1), (2, 3), (4, 5)], [(0, 2), (3, 3), (4, 9)], [(0, 0), (1, 4), (5, 6)]):
        table = MemoTable(leaf_capacity=2)
        for (lo, hi), value in zip(layout, "aba"):
            table.put_box("k", (lo,), (hi,), value)
        for x in range(10):
            table.get("k", (x,))  # cache every answer
        table.put_box("k", layout[1][:1], layout[1][1:], "a")  # now one box: the leaves rejoin
        for x in range(layout[-1][1] + 1):
            table.put("k", (x,), x)
            assert table.get("k", (x,)) == x, (layout, x)


def test_answers_stay_exact_across_compaction():
    table = MemoTable()
    points = list(itertools.product(range(5), repeat=3))
    random.Random(3).shuffle(points)
    for point in points:
        table.put("k", point, "same")
    boxes_before = table.stats().boxes
    for point in points:
        assert table.get("k", point) == "same"
    table.compact()
    assert table.stats().boxes < boxes_before
    for point in points:
        table.put("k", point, point)
        assert table.get("k", point) == point


def test_neighbours_merge_as_they_arrive():
    table = MemoTable()
    for point in itertools.product(range(10), repeat=2):
        table.put("k", point, "same")
    for x in reversed(range(16)):
        table.put("row", (x, 3), "same")
    assert table.stats().boxes == 2
    assert table.stats().compression_ratio == (100 + 16) / 2


def test_a_filled_grid_becomes_one_box():
    table = MemoTable()
    points = list(itertools.product(range(16), repeat=2))
    random.Random(0).shuffle(points)
    for point in points:
        table.put("k", point, "same")
    assert table.stats().compression_ratio >= 10
    table.compact()
    assert table.stats().boxes == 1
    assert len(table) == 256


def _six_dimensional_regions(seed: int) -> list:
    points = list(itertools.product(range(6), range(6), range(6), range(4), range(2), range(2)))
    random.Random(seed).shuffle(points)
    return [(point, (point[0] // 3, point[1] > point[2])) for point in points]


def test_regions_of_equal_values_compress_in_six_dimensions():
    """In random order greedy merging gets stuck; re-tiling (compact) recovers the regions."""
    table = MemoTable()
    for point, value in _six_dimensional_regions(1):
        table.put("k", point, value)
    table.compact()
    assert len(table) == 6 * 6 * 6 * 4 * 2 * 2
    assert table.stats().compression_ratio >= 50


def test_the_table_retiles_on_its_own():
    table = MemoTable()
    for seed in (1, 2, 3):  # later passes only re-put known points
        for point, value in _six_dimensional_regions(seed):
            table.put("k", point, value)
    assert table.stats().compression_ratio >= 50


def test_a_memory_limit_range_is_one_box():
    table = MemoTable()
    table.put_box("k", (3, 0), (3, 1 << 20), "fits")
    assert table.stats().boxes == 1
    assert len(table) == (1 << 20) + 1
    assert table.get("k", (3, 123_456)) == "fits"
    assert table.get("k", (3, (1 << 20) + 1)) is None
    assert table.get("k", (2, 0)) is None


def test_save_and_load_answer_identically(tmp_path):
    rng = random.Random(2)
    table = MemoTable(leaf_capacity=4)
    for _ in range(400):
        lo = (rng.randrange(8), rng.randrange(8), rng.randrange(8))
        hi = tuple(min(7, c + rng.choice([0, 0, 1, 3])) for c in lo)
        table.put_box(("matmul", "f32"), lo, hi, ("tile", rng.randrange(3)))
    table.put_box("limits", (1, 0), (1, 1 << 20), ("move", 0.5))
    path = tmp_path / "table.pkl"
    table.save(path)
    loaded = MemoTable.load(path)
    assert len(loaded) == len(table)
    assert loaded.keys() == table.keys()
    for point in itertools.product(range(9), repeat=3):
        assert loaded.get(("matmul", "f32"), point) == table.get(("matmul", "f32"), point)
    assert loaded.get("limits", (1, 777_777)) == ("move", 0.5)
    assert loaded.stats().points == table.stats().points


def test_load_rejects_other_files(tmp_path):
    foreign = tmp_path / "foreign.pkl"
    foreign.write_bytes(pickle.dumps({"something": "else"}))
    with pytest.raises(TableFileError, match="foreign.pkl"):
        MemoTable.load(foreign)
    table = MemoTable()
    table.put("k", (1,), 1)
    future = tmp_path / "future.pkl"
    table.save(future)
    payload = pickle.loads(future.read_bytes())
    future.write_bytes(pickle.dumps({**payload, "version": 99}))
    with pytest.raises(TableFileError, match="version 99"):
        MemoTable.load(future)
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"not a pickle")
    with pytest.raises(TableFileError):
        MemoTable.load(garbage)


def test_keys_are_separate_namespaces():
    table = MemoTable()
    table.put(("matmul", 3), (1, 2, 3), "a")
    table.put(("matmul", 2), (1, 2), "b")
    table.put(("fill", 3), (1, 2, 3), "c")
    assert table.get(("matmul", 3), (1, 2, 3)) == "a"
    assert table.get(("fill", 3), (1, 2, 3)) == "c"
    assert table.get(("matmul", 2), (1, 2)) == "b"
    assert table.get(("move", 3), (1, 2, 3)) is None
    assert len(table) == 3
    assert table.stats().boxes == 3


@pytest.mark.parametrize("bad", [(1, -1), (-3, 0)])
def test_a_negative_coordinate_is_rejected_by_name(bad):
    table = MemoTable()
    table.put("k", (0, 0), 1)
    for call in (lambda: table.put("k", bad, 1), lambda: table.get("k", bad), lambda: table.get("new", bad)):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            call()


def test_a_point_of_the_wrong_length_is_rejected_by_name():
    table = MemoTable()
    table.put("k", (0, 0), 1)
    for bad in [(1, 2, 3), (1,)]:
        with pytest.raises(InvalidPointError, match=re.escape(repr(bad))):
            table.put("k", bad, 1)
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            table.get("k", bad)
    table.put("other", (1, 2, 3), 1)  # another key may have another length


def test_other_bad_input_is_rejected():
    table = MemoTable()
    table.put("k", (1, 2), 1)
    assert table.get("k", (1, 2)) == 1
    with pytest.raises(InvalidPointError, match=re.escape("(1.0, 2.0)")):
        table.get("k", (1.0, 2.0))  # equal to a cached (1, 2), still not a point
    with pytest.raises(InvalidPointError, match="lo <= hi"):
        table.put_box("k", (3, 3), (2, 5), 1)
    with pytest.raises(MemoTableError, match="None"):
        table.put("k", (0, 0), None)
    assert table.get("k", [1, 2]) == 1  # any sequence of ints names the point
