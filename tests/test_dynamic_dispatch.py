"""Dispatch tree, set cover and cost model; the compiled Relax dispatcher runs the kernel the tree names."""
import tvm_morello  # noqa: F401  (before tvm)

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tvm_morello import dynamic as dyn
from tvm_morello.dynamic.cost_model import adaptation, calibrate_alpha
from tvm_morello.dynamic.dispatch import DispatchTree, Node
from tvm_morello.measure.kernels import Measurement
from tvm_morello.codegen.microkernel import MicroKernel
from tvm_morello.dynamic.plan import OperatorPlan
from tvm_morello.dynamic.set_cover import assign, assign_in_runs, greedy_set_cover
from tvm_morello.library import compile_library

TARGET = tvm_morello.resolve_target(None)


def test_tree_reproduces_labels_and_thresholds_are_integers():
    x = np.arange(1, 101)[:, None]
    y = np.where(x[:, 0] <= 7, 0, np.where(x[:, 0] <= 60, 1, 2))
    tree = DispatchTree(["m"]).fit(x, y)
    assert (tree.predict(x) == y).all()
    assert tree.predict_one([7]) == 0 and tree.predict_one([8]) == 1 and tree.predict_one([61]) == 2
    regions = tree.regions([1], [100])
    assert [(r.kernel, r.lo, r.hi) for r in regions] == [(0, (1,), (7,)), (1, (8,), (60,)), (2, (61,), (100,))]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=2, max_size=60))
def test_tree_regions_partition_the_range(labels):
    x = np.arange(1, len(labels) + 1)[:, None]
    tree = DispatchTree(["m"]).fit(x, np.array(labels))
    regions = tree.regions([1], [len(labels)])
    covered = sorted(v for r in regions for v in range(r.lo[0], r.hi[0] + 1))
    assert covered == list(range(1, len(labels) + 1))
    for r in regions:
        assert all(tree.predict_one([v]) == r.kernel for v in range(r.lo[0], r.hi[0] + 1))
    assert (tree.predict(x) == np.array(labels)).all()


def _weighted_depth(root: Node, weight) -> float:
    """Sum over values of weight x branches taken (one variable, values 1..len(weight))."""
    def depth(v):
        node, d = root, 0
        while not node.is_leaf:
            node, d = (node.left if v <= node.threshold else node.right), d + 1
        return d
    return sum(w * depth(v) for v, w in enumerate(weight, start=1))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=60), st.integers(0, 2**31 - 1))
def test_reordered_dispatch_tree_is_equivalent_and_never_deeper(labels, seed):
    from tvm_morello.dynamic.branch_order import cheapest_search_tree

    x = np.arange(1, len(labels) + 1)[:, None]
    tree = DispatchTree(["m"]).fit(x, np.array(labels))
    weight = np.random.default_rng(seed).random(len(labels)) + 1e-3
    root = cheapest_search_tree(tree, 1, len(labels), lambda v: weight[v - 1])
    reordered = DispatchTree.from_root(["m"], root)
    assert [reordered.predict_one([v]) for v in range(1, len(labels) + 1)] == labels
    assert _weighted_depth(root, weight) <= _weighted_depth(tree.root_, weight) + 1e-9


def test_reordered_dispatch_tree_puts_the_tiny_calls_first():
    from tvm_morello.dynamic.branch_order import cheapest_search_tree, relative_branch_weight

    # five intervals; sklearn balances them, the reordered tree reaches m <= 4 (the cheapest calls) in one branch
    labels = [0] * 4 + [1] * 8 + [2] * 16 + [3] * 32 + [0] * 64
    tree = DispatchTree(["m"]).fit(np.arange(1, 125)[:, None], np.array(labels))
    root = cheapest_search_tree(tree, 1, 124, lambda v: relative_branch_weight(2 * v * 768 * 768))
    assert root.threshold == 4 and root.left.is_leaf and root.left.kernel == 0


def test_tree_json_round_trip():
    root = Node(0, 5, Node(kernel=1), Node(0, 9, Node(kernel=0), Node(kernel=2)))
    tree = DispatchTree.from_root(["T"], root)
    again = DispatchTree.from_root(["T"], Node.from_json(tree.to_json()["root"]))
    assert [again.predict_one([v]) for v in range(1, 12)] == [tree.predict_one([v]) for v in range(1, 12)]


def test_greedy_set_cover_respects_cap_and_covers():
    cost = np.array([[1.0, 5.0, 9.0], [1.0, 5.0, 9.0], [9.0, 1.0, 5.0], [9.0, 9.0, 1.0]])
    weights = np.full(4, 0.25)
    assert greedy_set_cover(cost, weights, top_k=1, cap=3) == [0, 1, 2]
    chosen = greedy_set_cover(cost, weights, top_k=1, cap=1)
    assert chosen == [0]
    assert list(assign(cost, [0, 2])) == [0, 0, 2, 2]
    with pytest.raises(tvm_morello.MorelloError, match="cap"):
        greedy_set_cover(cost, weights, cap=0)


def _runs(labels) -> int:
    return 1 + int(np.count_nonzero(np.diff(labels)))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 7), st.integers(1, 3), st.floats(0.0, 0.3), st.integers(0, 2**31 - 1))
def test_runs_are_fewest_and_every_kernel_acceptable(n, k, slack, seed):
    import itertools

    cost = np.random.default_rng(seed).uniform(1.0, 2.0, size=(n, k + 1))
    chosen = list(range(1, k + 1))  # column 0 is not chosen
    labels = assign_in_runs(cost, chosen, np.ones(n), slack_s=0.0, relative_slack=slack)
    best = cost[:, chosen].min(axis=1)
    ok = lambda i, c: cost[i, c] <= best[i] * (1 + slack)  # noqa: E731
    assert all(c in chosen and ok(i, c) for i, c in enumerate(labels))
    fewest = min(_runs(lab) for lab in itertools.product(chosen, repeat=n) if all(ok(i, c) for i, c in enumerate(lab)))
    assert _runs(labels) == fewest
    assert _runs(labels) <= _runs(assign(cost, chosen))


def test_runs_without_slack_are_the_cheapest_kernels():
    cost = np.array([[1.0, 1.02], [1.0, 1.02], [1.05, 1.0], [1.0, 1.02]])
    assert list(assign_in_runs(cost, [0, 1], np.ones(4), slack_s=0.0, relative_slack=0.0)) == [0, 0, 1, 0]
    assert list(assign_in_runs(cost, [0, 1], np.ones(4), slack_s=0.0, relative_slack=0.06)) == [0, 0, 0, 0]


def test_adaptation_padding_and_occupancy():
    wl = dyn.dense(64, 64, (1, 100))
    full = adaptation(wl, MicroKernel(4, 32), 32, {"m": 8}, cores=2)
    assert full.padding == 1.0 and full.occupancy == 1.0
    padded = adaptation(wl, MicroKernel(4, 32), 32, {"m": 5}, cores=2)
    assert padded.padding == pytest.approx(5 / 8)
    starved = adaptation(wl, MicroKernel(4, 64), 64, {"m": 8}, cores=2)
    assert starved.occupancy == pytest.approx(0.5)


def test_dot_adaptation_pads_rows_and_columns_but_no_panel():
    qk = dyn.batch_matmul(3, "T", 64, "T", {"T": (1, 64)}, name="qk")
    dot = MicroKernel(2, 4, dot=True)
    tiny = adaptation(qk, dot, 32, {"T": 1}, cores=2)
    assert tiny.padding == pytest.approx(1 / (2 * 4))  # one real output in a 2 x 4 tile, not a 32-wide panel
    assert tiny.occupancy == pytest.approx(3 / 4)  # 3 (batch, row tile) units on 2 cores: 2 waves
    assert adaptation(qk, MicroKernel(4, 32), 32, {"T": 1}, cores=2).padding == pytest.approx(1 / (4 * 32))
    # a batch of 9 matrices on 2 cores is split by matrix: 9 units in 5 waves, however many row tiles
    wide = dyn.batch_matmul(9, "T", 64, "T", {"T": (1, 64)}, name="qk9")
    assert adaptation(wide, dot, 32, {"T": 7}, cores=2).occupancy == pytest.approx(9 / 10)


def test_alpha_calibrated_from_runs_at_different_occupancy():
    qk = dyn.batch_matmul(1, "T", 64, "T", {"T": (1, 64)}, name="qk")
    micro = MicroKernel(4, 16)
    # T=16: one column tile on two cores (occupancy 1/2); T=32: two tiles (occupancy 1); no padding in either
    runs = [Measurement(micro, (("T", 16),), 1.0, 5.0), Measurement(micro, (("T", 32),), 1.0, 5.0 * 2**0.5)]
    assert calibrate_alpha(qk, runs, 16, 2) == pytest.approx(0.5)
    # dense: occupancy does not change with m, so there is nothing to fit and the analytic exponent stays
    wl = dyn.dense(64, 64, (1, 100))
    dense_runs = [Measurement(micro, (("m", 8),), 1.0, 10.0), Measurement(micro, (("m", 16),), 1.0, 5.0)]
    assert calibrate_alpha(wl, dense_runs, 32, 2) == 1.0


def _marker_kernel(workload, panel, value):
    """A kernel with the real signature that fills the output with ``value``."""
    from tvm import te, tirx

    symbols = {name: te.var(name, "int64") for name in workload.var_names}
    m, k, n = (symbols[d] if isinstance(d, str) else tirx.IntImm("int64", d) for d in (workload.m, workload.k, workload.n))
    a = te.placeholder((m, k), name="A")
    b = te.placeholder((tirx.IntImm("int64", -(-workload.n // panel)), k, tirx.IntImm("int64", panel)), name="Bp")
    out = te.compute((m, n), lambda i, j: tirx.const(value, "float32") + 0 * a[i, 0] + 0 * b[0, 0, 0], name="Y")
    return te.create_prim_func([a, b, out])


def test_compiled_dispatcher_runs_the_kernel_the_tree_names():
    import tvm
    from tvm import relax

    wl = dyn.dense(64, 64, (1, 50))
    root = Node(0, 3, Node(kernel=0), Node(0, 20, Node(kernel=1), Node(kernel=2)))
    plan = OperatorPlan(wl, 32, (MicroKernel(1, 32), MicroKernel(4, 32), MicroKernel(8, 32)),
                        DispatchTree.from_root(["m"], root))
    markers = {(wl.name, i): _marker_kernel(wl, 32, float(i + 1)) for i in range(3)}
    vm = relax.VirtualMachine(compile_library([plan], TARGET, kernel_funcs=markers), tvm.cpu())
    packed = vm[plan.pack_entry](tvm.runtime.tensor(np.zeros((64, 64), "float32")))
    for m in (1, 3, 4, 20, 21, 50):
        out = vm[plan.entry](tvm.runtime.tensor(np.zeros((m, 64), "float32")), packed).numpy()
        assert out.shape == (m, 64)
        assert np.all(out == plan.tree.predict_one([m]) + 1), m


def test_cost_model_learns_overhead_and_throughput():
    from tvm_morello.dynamic.cost_model import ThroughputModel

    wl = dyn.batch_matmul(4, "T", 64, 64, {"T": (1, 128)}, transpose_b=False, name="av")
    par, ser = MicroKernel(4, 32), MicroKernel(1, 32, parallel=False)

    def run(micro, t, overhead, gflops):
        env = {"T": t}
        seconds = overhead + wl.flops(env) / (gflops * adaptation(wl, micro, 32, env, 2).factor(1.0) * 1e9)
        return Measurement(micro, (("T", t),), seconds, wl.flops(env) / seconds / 1e9)

    runs = [run(par, 128, 20e-6, 100.0), run(par, 1, 20e-6, 100.0), run(ser, 128, 1e-6, 100.0), run(ser, 1, 1e-6, 100.0)]
    model = ThroughputModel(16, 2, alpha=1.0).fit(wl, 32, runs)
    assert model.overhead_[par] == pytest.approx(20e-6, rel=0.3)
    assert model.overhead_[ser] < 5e-6
    cost = model.predict_seconds(wl, 32, [par, ser], [{"T": 1}, {"T": 128}])
    assert cost[0].argmin() == 1  # tiny: the serial kernel (no thread-pool wake-up)
    assert cost[1].argmin() == 0  # large: the parallel kernel


def _bert_dense_768x3072():
    """BERT-base's dense 768x3072 over m = batch x seq, batch 1..16, seq 1..128, weighted by how often each m occurs."""
    from collections import Counter

    calls = Counter(batch * seq for batch in range(1, 17) for seq in range(1, 129))
    sample = tuple(sorted(calls))
    return dyn.dense(3072, 768, dyn.VarRange(1, 2048, sample, tuple(float(calls[m]) for m in sample)))


def _run(wl, micro, env, seconds):
    return Measurement(micro, tuple(sorted(env.items())), seconds, wl.flops(env) / seconds / 1e9)


def test_costs_agree_with_the_fastest_runs_and_interpolate_between_them():
    from tvm_morello.dynamic.planning import calibrated

    wl = dyn.dense(64, 64, (1, 64), name="d")
    shapes = [{"m": m} for m in (1, 2, 4, 8, 16, 32, 64)]
    micros = [MicroKernel(4, 16), MicroKernel(2, 16), MicroKernel(1, 16, parallel=False)]
    model = lambda micro, envs: np.array([1e-9 * wl.flops(env) for env in envs])  # noqa: E731
    predicted = np.array([model(mk, shapes) for mk in micros]).T
    runs = [_run(wl, micros[0], {"m": 2}, 2 * 2 * 2 * 64 * 64e-9), _run(wl, micros[0], {"m": 32}, 0.5 * 2 * 32 * 64 * 64e-9),
            _run(wl, micros[0], {"m": 32}, 4.0),  # a slower run of the same pair is ignored
            _run(wl, micros[1], {"m": 8}, 3 * 2 * 8 * 64 * 64e-9),
            _run(wl, MicroKernel(8, 16), {"m": 1}, 9.0)]  # a kernel that is not a candidate is ignored
    cost = calibrated(predicted, shapes, micros, runs, wl.flops, model)
    ratio = cost / predicted
    # measured 2x the prediction at m = 2 and 0.5x at m = 32: held beyond them, geometric in flops between
    np.testing.assert_allclose(ratio[:, 0], [2, 2, 2 ** 0.5, 1, 2 ** -0.5, 0.5, 0.5])
    np.testing.assert_allclose(ratio[:, 1], 3.0)  # one run: its ratio everywhere
    np.testing.assert_array_equal(cost[:, 2], predicted[:, 2])  # no runs: the model's
    assert predicted[1, 0] == pytest.approx(2 * 2 * 64 * 64e-9)  # the input is not modified


def test_close_calls_are_the_heaviest_near_ties_at_their_weighted_median_shape():
    from tvm_morello.dynamic.planning import Ranking

    micros = [MicroKernel(4, 16), MicroKernel(2, 16), MicroKernel(6, 16)]
    shapes = [{"m": m} for m in range(1, 9)]
    weights = np.array([1, 1, 1, 1, 4, 1, 1, 1], dtype=float)
    cost = np.array([[1.0, 1.5, 2.0]] * 3 + [[1.0, 1.05, 2.0]] * 3 + [[1.0, 2.0, 1.08]] * 2)
    ranking = Ranking(shapes, weights, cost, [0, 1, 2], np.zeros(8, dtype=int), 1.0)
    flops = lambda env: env["m"]  # noqa: E731
    # m = 4..6 (weight 6) race the 2-row tile, m = 7, 8 (weight 2) the 6-row one; m = 1..3 are not close; the
    # small end's largest shape (m = 8, SMALL_END = 8) gets its kernel and the best other run there, close or not
    at_8 = [(micros[0], {"m": 8}), (micros[2], {"m": 8})]
    assert ranking.contested(micros, 0.1, 2, flops) == [(micros[0], {"m": 5}), (micros[1], {"m": 5}),
                                                       (micros[0], {"m": 7}), (micros[2], {"m": 7}), *at_8]
    assert ranking.contested(micros, 0.1, 1, flops) == [(micros[0], {"m": 5}), (micros[1], {"m": 5}), *at_8]
    assert ranking.contested(micros, 0.07, 2, flops) == [(micros[0], {"m": 5}), (micros[1], {"m": 5}), *at_8]
    # when the smallest shape's call is close too, both kernels are also run there, however light it is
    close_at_1 = cost.copy()
    close_at_1[0] = [1.0, 2.0, 1.04]
    ranking = Ranking(shapes, weights, close_at_1, [0, 1, 2], np.zeros(8, dtype=int), 1.0)
    assert ranking.contested(micros, 0.1, 1, flops) == [(micros[0], {"m": 5}), (micros[1], {"m": 5}),
                                                       (micros[0], {"m": 1}), (micros[2], {"m": 1}), *at_8]
    assert ranking.contested(micros, 0.1, 0, flops) == []  # no close calls asked for
    # one candidate: nothing to settle
    alone = Ranking(shapes, weights, cost[:, :1], [0], np.zeros(8, dtype=int), 1.0)
    assert alone.contested(micros[:1], 0.1, 2, flops) == []


def test_a_kernel_faster_between_the_runs_keeps_the_shapes_there():
    """BERT-base's dense 768x3072 as measured on Zen 4 (session 25): the 4 x 16 tile 3.5% ahead of the 4 x 64 at
    m = 2048, 11% behind at m = 43 and 12% at m = 1. Planned from the largest runs' throughputs, m = 16..22 and
    64..100 ran the 4 x 16 tile; every m up to 100 must run a 64-wide one."""
    from tvm_morello.dynamic.config import TuningConfig
    from tvm_morello.dynamic.planning import plan_from_measurements
    from tvm_morello.target import named_target

    wl = _bert_dense_768x3072()
    nr16, nr64, mr5 = MicroKernel(4, 16), MicroKernel(4, 64), MicroKernel(5, 64)
    runs = [_run(wl, micro, {"m": m}, seconds * 1e-6)
            for micro, m, seconds in ((nr16, 1, 98.3), (nr16, 43, 1027.2), (nr16, 2048, 44158.9),
                                      (nr64, 1, 86.5), (nr64, 43, 913.7), (nr64, 2048, 45805.9),
                                      (mr5, 1, 105.0), (mr5, 43, 920.5), (mr5, 1845, 41353.1))]
    plan = plan_from_measurements(wl, named_target("znver4"), 64, [nr16, nr64, mr5], runs, TuningConfig())
    assert nr16 not in {plan.kernels[plan.tree.predict_one([m])] for m in range(1, 101)}


def test_measurement_shapes_span_the_range_on_a_log_scale():
    from tvm_morello.dynamic.jobs import measurement_shapes

    qk = dyn.batch_matmul(4, "T", 64, "T", {"T": (1, 128)}, name="qk")
    shapes, _ = qk.tuning_shapes(128)
    picked = measurement_shapes(qk, MicroKernel(4, 16), 16, shapes, cores=2, count=4)
    ts = [env["T"] for env in picked]
    assert len(set(ts)) == 5 and ts[0] % 16 == 0  # best adapted first: whole 16-wide tiles
    assert 1 in ts and 128 in ts and any(9 <= t <= 16 for t in ts)  # T^2 flops: the log middle is T ~ 11
    assert ts[-1] == 8  # and the small end's largest


@settings(max_examples=60, deadline=None)
@given(lo=st.integers(1, 5), length=st.integers(1, 600), max_shapes=st.integers(4, 64))
def test_tuning_shapes_keep_the_small_end_and_the_share_of_every_call(lo, length, max_shapes):
    from tvm_morello.spec.symbolic import SMALL_END

    wl = dyn.dense(64, 64, (lo, lo + length - 1))
    shapes, weights = wl.tuning_shapes(max_shapes)
    values = [s["m"] for s in shapes]
    assert values == sorted(set(values)) and len(values) == min(length, max_shapes)
    small = min(SMALL_END, max_shapes // 2) if length > max_shapes else length
    assert values[:small] == list(range(lo, lo + small)) and values[-1] == lo + length - 1
    # every declared value's share goes to the nearest tuned value: shares are whole counts of values
    counts = weights * length
    assert np.isclose(weights.sum(), 1) and np.allclose(counts, np.round(counts)) and (counts >= 1 - 1e-9).all()


def test_losing_shapes_are_the_worst_checked_points_first():
    from tvm_morello.library.export import losing_shapes

    plan = OperatorPlan(dyn.dense(64, 64, (1, 64)), 64, (MicroKernel(1, 16),), DispatchTree(["m"]).fit([[1]], [0]))
    plan.provenance["speed_check"] = {"points": [
        {"shape": {"m": 1}, "seconds": 2.0, "numpy_seconds": 1.0},   # 0.5x numpy
        {"shape": {"m": 2}, "seconds": 1.0, "numpy_seconds": 0.95},  # 0.95x: not losing at 0.9
        {"shape": {"m": 8}, "seconds": 1.0, "numpy_seconds": 0.8},   # 0.8x
        {"shape": {"m": 64}, "seconds": 1.0, "numpy_seconds": 3.0},
    ]}
    assert losing_shapes(plan, below=0.9) == [{"m": 1}, {"m": 8}]
    assert losing_shapes(plan, below=0.9, most=1) == [{"m": 1}]
    assert losing_shapes(plan, below=0.4) == []


def test_serial_kernels_are_measured_at_the_small_end():
    from tvm_morello.dynamic.jobs import measurement_shapes

    wl = dyn.dense(1024, 4096, (1, 256))
    shapes, _ = wl.tuning_shapes(64)
    picked = measurement_shapes(wl, MicroKernel(1, 16, parallel=False), 64, shapes, cores=2, count=3)
    assert [env["m"] for env in picked] == [1, 5, 8]  # smallest, middle and largest of m = 1..8
    parallel = measurement_shapes(wl, MicroKernel(4, 32), 64, shapes, cores=2, count=3)
    assert max(env["m"] for env in parallel) > 8 and {"m": 8} in parallel  # the range, and its small end


def test_costly_throughput_runs_are_made_only_for_kernels_that_screened_well():
    from tvm_morello.dynamic.jobs import TuningJobs, worth_throughput_runs
    from tvm_morello.measure.kernels import Measurement

    good, slow, unscreened = MicroKernel(4, 64), MicroKernel(1, 16), MicroKernel(8, 32)

    def jobs(k, n):
        wl = dyn.dense(n, k, (1, 512))
        throughput = tuple((mk, {"m": 512}) for mk in (good, slow, unscreened))
        return TuningJobs(wl, (good, slow, unscreened), 64, (), throughput, 0.0)

    screened = [Measurement(good, (("m", 1),), 1e-3, 30.0), Measurement(good, (("m", 32),), 1e-2, 190.0),
                Measurement(slow, (("m", 32),), 4e-2, 47.0)]  # 47 GFLOP/s: below 0.75 of the best
    # Llama-2's FFN down: the slow kernel's run at m = 512 would take ~1 s per call, so it is skipped
    big = worth_throughput_runs(jobs(11008, 4096), screened, cores=2, keep=0.75, repeat_s=0.04)
    assert [mk for mk, _ in big] == [good, unscreened]
    # a small operator's run is shorter than one repeat: made whatever the kernel (skipping saves nothing)
    small = worth_throughput_runs(jobs(64, 64), screened, cores=2, keep=0.75, repeat_s=0.04)
    assert [mk for mk, _ in small] == [good, slow, unscreened]
    # a screening run too short to time throughput judges nothing
    short = [Measurement(mk, (("m", 1),), 5e-5, gflops) for mk, gflops in ((good, 190.0), (slow, 47.0))]
    assert len(worth_throughput_runs(jobs(11008, 4096), short, cores=2, keep=0.75, repeat_s=0.04)) == 3
    # with a lenient threshold every kernel screens well enough
    assert len(worth_throughput_runs(jobs(11008, 4096), screened, cores=2, keep=0.2, repeat_s=0.04)) == 3


def test_speed_check_points_are_planned_shapes_from_the_small_end_to_the_top():
    """A checked shape where the library loses is measured and planned again: it must be one of the shapes the
    plan ranks kernels at, also for a range with more values than the plan ranks."""
    from tvm_morello.dynamic.planning import planned_shapes
    from tvm_morello.library.speed import check_points

    wl = dyn.dense(64, 64, dyn.VarRange.scaled(1, 128, 16))  # m = 16 T: only multiples of 16 are tuned for
    plan = OperatorPlan(wl, 64, (MicroKernel(1, 16),), DispatchTree(["m"]).fit([[16]], [0]),
                        {"config": {"max_shapes": 64}})
    points = [env["m"] for env in check_points(plan, count=12)]
    assert len(points) == 12 and set(points) <= {env["m"] for env in planned_shapes(wl, 64)[0]}
    assert points[:6] == [16, 32, 48, 64, 80, 96] and points[-1] == 2048
    wide = dyn.dense(64, 64, (1, 8192))
    plan = OperatorPlan(wide, 64, plan.kernels, plan.tree, {"config": {"max_shapes": 64}})
    points = [env["m"] for env in check_points(plan, count=12)]
    assert set(points) <= {env["m"] for env in planned_shapes(wide, 64)[0]} and points[-1] == 8192


def test_tuning_shapes_of_an_unsorted_sample_start_at_its_smallest_values():
    wl = dyn.dense(64, 64, dyn.VarRange(1, 400, sample=tuple(range(400, 0, -1))))
    shapes, weights = wl.tuning_shapes(16)
    assert [s["m"] for s in shapes][:8] == list(range(1, 9)) and shapes[-1]["m"] == 400
    assert np.isclose(weights.sum(), 1)


def test_tuning_shapes_of_two_variables_pair_every_pick_with_the_small_end():
    # a model's batch x heads and seq: batch 1 (12 matrices) must be tuned at every short sequence too
    batches = dyn.VarRange(12, 192, tuple(range(12, 193, 12)))
    wl = dyn.batch_matmul("nbatch", "seq", 64, "seq", {"nbatch": batches, "seq": (1, 128)}, transpose_b=False)
    shapes, weights = wl.tuning_shapes(64)
    assert len(shapes) <= 64 and np.isclose(weights.sum(), 1)
    pairs = {(s["nbatch"], s["seq"]) for s in shapes}
    seqs, nbatches = {s for _, s in pairs}, {b for b, _ in pairs}
    assert {12, 192} <= nbatches and {1, 2, 3, 4, 128} <= seqs
    assert all((b, s) in pairs for b in nbatches for s in seqs)  # a grid
    assert len(seqs) > len(nbatches)  # the variable with more values gets more of the budget
    assert wl.smallest_batch() == 12 and wl.dims({"nbatch": 24, "seq": 5}) == (24, 5, 64, 5)


def test_one_variable_plans_rank_every_value_between_sparse_tuning_shapes():
    """BERT-base's dense 768x3072 over m = batch x seq (batch 1..16, seq 1..128), measured as on Zen 4: its
    tuning shapes between 8 and 43 are 9 and 26, where 2-row tiles pad less than 4-row ones; the plan must still
    run the 4-row kernel (faster by 8% per padded row) wherever it pads no more, e.g. m = 12, 16, 24, 32."""
    from tvm_morello.dynamic.config import TuningConfig
    from tvm_morello.dynamic.planning import plan_from_measurements
    from tvm_morello.target import named_target

    wl = _bert_dense_768x3072()
    assert [env["m"] for env in wl.tuning_shapes(64)[0] if 8 < env["m"] < 43] == [9, 26]
    mr2, mr4 = MicroKernel(2, 64), MicroKernel(4, 64)
    runs = [Measurement(micro, (("m", m),), seconds, wl.flops({"m": m}) / seconds / 1e9)
            for micro, m, seconds in ((mr2, 1, 53.3e-6), (mr2, 43, 979.2e-6), (mr2, 2048, 46138.4e-6),
                                      (mr4, 1, 84.4e-6), (mr4, 43, 903.5e-6), (mr4, 2048, 42798.8e-6))]
    plan = plan_from_measurements(wl, named_target("znver4"), 64, [mr2, mr4], runs, TuningConfig())
    kernel_at = {m: plan.kernels[plan.tree.predict_one([m])] for m in (1, 9, 10, 12, 16, 24, 32, 43, 512)}
    assert kernel_at == {1: mr2, 9: mr2, 10: mr2, 12: mr4, 16: mr4, 24: mr4, 32: mr4, 43: mr4, 512: mr4}
