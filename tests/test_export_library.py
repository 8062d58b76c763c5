"""Exported libraries: verified before writing, loadable by plain TVM in a fresh process, range-checked."""
import tvm_morello  # noqa: F401  (before tvm)

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tvm_morello import dynamic as dyn
from tvm_morello.dynamic.dispatch import DispatchTree, Node
from tvm_morello.codegen.microkernel import MicroKernel
from tvm_morello.dynamic.plan import OperatorPlan
from tvm_morello.errors import VerificationError
from tvm_morello.library import export_library, read_manifest

TARGET = tvm_morello.resolve_target(None)


def _plans():
    dense = dyn.dense(96, 64, (1, 40))
    qk = dyn.batch_matmul(2, "T", 64, "T", {"T": (1, 24)}, transpose_b=True, name="qk")
    av = dyn.batch_matmul(2, "T", "T", 64, {"T": (1, 24)}, transpose_b=False, name="av")
    split = DispatchTree.from_root
    return [
        OperatorPlan(dense, 32, (MicroKernel(2, 32), MicroKernel(6, 16)), split(["m"], Node(0, 5, Node(kernel=0), Node(kernel=1)))),
        OperatorPlan(qk, 32, (MicroKernel(4, 16), MicroKernel(1, 32), MicroKernel(2, 4, dot=True)),
                     split(["T"], Node(0, 3, Node(kernel=2), Node(0, 9, Node(kernel=1), Node(kernel=0))))),
        OperatorPlan(av, 32, (MicroKernel(4, 32),), split(["T"], Node(kernel=0))),
    ]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("lib") / "ops.so"
    return export_library(_plans(), TARGET, out)


def test_manifest_describes_entries(exported):
    manifest = read_manifest(exported.manifest)
    ops = {op["entry"]: op for op in manifest["operators"]}
    assert set(ops) == {"dense", "qk", "av"}
    assert ops["dense"]["pack_entry"] == "dense_pack_weights"
    assert ops["dense"]["workload"]["ranges"]["m"]["hi"] == 40
    assert ops["dense"]["dispatch_tree"]["root"]["threshold"] == 5
    assert [k["name"] for k in ops["dense"]["kernels"]] == ["dense__mr2_nr32", "dense__mr6_nr16"]
    assert [k["form"] for k in ops["qk"]["kernels"]] == ["outer", "outer", "dot"]
    assert manifest["verification"]["max_rel_error"] < 1e-4
    assert [5] in manifest["verification"]["checked"]["dense"] and [6] in manifest["verification"]["checked"]["dense"]


LOADER = textwrap.dedent('''
    import json, sys
    import numpy as np
    import tvm
    from tvm import relax
    lib, manifest = sys.argv[1], json.load(open(sys.argv[2]))
    vm = relax.VirtualMachine(tvm.runtime.load_module(lib), tvm.cpu())
    rng = np.random.default_rng(1)
    w = rng.standard_normal((96, 64), dtype=np.float32)
    packed = vm["dense_pack_weights"](tvm.runtime.tensor(w))
    for m in (1, 5, 6, 17, 40):
        x = rng.standard_normal((m, 64), dtype=np.float32)
        np.testing.assert_allclose(vm["dense"](tvm.runtime.tensor(x), packed).numpy(), x @ w.T, rtol=1e-4, atol=1e-4)
    for t in (1, 2, 3, 4, 9, 10, 24):
        q, k = rng.standard_normal((2, t, 64), dtype=np.float32), rng.standard_normal((2, t, 64), dtype=np.float32)
        got = vm["qk"](tvm.runtime.tensor(q), tvm.runtime.tensor(k)).numpy()
        np.testing.assert_allclose(got, q @ k.transpose(0, 2, 1), rtol=1e-4, atol=1e-4)
        p, v = rng.standard_normal((2, t, t), dtype=np.float32), rng.standard_normal((2, t, 64), dtype=np.float32)
        np.testing.assert_allclose(vm["av"](tvm.runtime.tensor(p), tvm.runtime.tensor(v)).numpy(), p @ v, rtol=1e-4, atol=1e-4)
    try:
        vm["dense"](tvm.runtime.tensor(np.zeros((41, 64), "float32")), packed)
        print("NO ERROR")
    except Exception as err:
        print("OUT OF RANGE:", str(err).splitlines()[-1] if str(err) else type(err).__name__)
    assert "tvm_morello" not in sys.modules
    print("OK", len(manifest["operators"]))
''')


def test_fresh_process_without_tvm_morello_runs_library(exported):
    proc = subprocess.run([sys.executable, "-c", LOADER, str(exported.library), str(exported.manifest)],
                          capture_output=True, text=True, timeout=120, cwd="/")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OK 3" in proc.stdout
    assert "OUT OF RANGE:" in proc.stdout and "dense: shape outside the declared range (m in 1..40)" in proc.stdout


def test_out_of_range_shape_raises_clear_error(exported):
    import tvm

    vm, _ = tvm_morello.library.load_library(exported.library)
    with pytest.raises(ValueError, match=r"qk: shape outside the declared range \(T in 1\.\.24\)"):
        vm["qk"](tvm.runtime.tensor(np.zeros((2, 25, 64), "float32")), tvm.runtime.tensor(np.zeros((2, 25, 64), "float32")))
    with pytest.raises(ValueError, match=r"dense: shape outside the declared range \(m in 1\.\.40\)"):
        packed = vm["dense_pack_weights"](tvm.runtime.tensor(np.zeros((96, 64), "float32")))
        vm["dense"](tvm.runtime.tensor(np.zeros((41, 64), "float32")), packed)


def _broken_kernel(workload, micro, panel):
    """A kernel with the real signature and an off-by-one reduction (skips k = 0)."""
    from tvm import te, tirx

    m = te.var("m", "int64")
    k, n = tirx.IntImm("int64", workload.k), tirx.IntImm("int64", workload.n)
    a = te.placeholder((m, k), name="A")
    bp = te.placeholder((tirx.IntImm("int64", -(-workload.n // panel)), k, tirx.IntImm("int64", panel)), name="Bp")
    r = te.reduce_axis((tirx.IntImm("int64", 0), k), "k")
    out = te.compute((m, n), lambda i, j: te.sum(tirx.if_then_else(r > 0, a[i, r] * bp[j // panel, r, j % panel], 0.0),
                                                 axis=r), name="Y")
    return te.create_prim_func([a, bp, out])


def test_verification_refuses_broken_kernel(tmp_path):
    plans = _plans()[:1]
    broken = {("dense", 1): _broken_kernel(plans[0].workload, plans[0].kernels[1], 32)}
    out = tmp_path / "broken.so"
    with pytest.raises(VerificationError, match=r"dense at \{'m': \d+\} \(kernel mr6_nr16\)"):
        export_library(plans, TARGET, out, kernel_funcs=broken)
    assert not out.exists() and not out.with_suffix(".json").exists()
    # the same plan with the real kernel passes
    assert export_library(plans, TARGET, out).library.exists()
    assert json.loads(out.with_suffix(".json").read_text())["operators"][0]["entry"] == "dense"


@pytest.mark.parametrize("n, panel", [(4096, 64), (1000, 64), (200, 16)])
def test_verification_checks_every_panel_and_the_ends_whole(n, panel):
    from tvm_morello.library.verify import checked_columns

    columns = checked_columns(n, panel, np.random.default_rng(0))
    panels = -(-n // panel)
    assert len(set(columns.tolist())) == len(columns) and columns.min() >= 0 and columns.max() < n
    assert {int(c) // panel for c in columns} == set(range(panels))  # every panel's code path
    assert set(range(panel)) | set(range((panels - 1) * panel, n)) <= set(columns.tolist())  # both ends whole
    assert len(columns) <= 2 * panel + 2 * panels  # a fraction of the product: 256 of Llama-2's 4096 columns
    assert checked_columns(4 * 64, 64, np.random.default_rng(0)) == slice(None)  # small outputs: all of them


def test_a_models_speed_check_reads_each_weight_from_copies_in_turn(exported):
    """In a model a weight is read among the others (not hot in the core's caches, as a kernel called over and
    over finds it): the speed check then packs copies spanning those bytes and calls the library on them in
    turn, as the tuner measured it."""
    import tvm
    from tvm import relax

    from tvm_morello.library.speed import check_speed

    vm = relax.VirtualMachine(tvm.runtime.load_module(str(exported.library)), tvm.cpu())
    dense = _plans()[0]
    packed, called = [], []

    class RecordingVM:
        def __getitem__(self, name):
            func = vm[name]
            if name == dense.pack_entry:
                return lambda b: packed.append(func(b)) or packed[-1]
            return lambda a, w: called.append(w) or func(a, w)

    weight_bytes = 96 * 64 * 4
    (check,) = check_speed(RecordingVM(), [dense], 2, min_repeat_ms=1, streamed_bytes=3 * weight_bytes)
    order = [id(w) for w in packed]
    assert len(packed) == 3 and {id(w) for w in called} == set(order)
    assert [order.index(id(w)) for w in called[:5]] == [2, 0, 1, 2, 0]  # a first call, then the copies in turn
    assert len(check.points) == 2 and all(p.seconds > 0 and p.numpy_seconds > 0 for p in check.points)


def test_a_replan_is_kept_only_when_it_runs_faster():
    from tvm_morello.library.export import keep_faster

    def with_times(plan, seconds):
        points = [{"shape": {"m": m}, "seconds": s, "numpy_seconds": 1.0} for m, s in seconds.items()]
        return OperatorPlan(plan.workload, plan.panel, plan.kernels, plan.tree, {"speed_check": {"points": points}})

    plan = _plans()[0]
    first = with_times(plan, {1: 1.0, 8: 2.0, 40: 4.0})
    slower = with_times(plan, {1: 0.5, 8: 3.0, 40: 8.0})  # faster at m = 1, slower overall
    faster = with_times(plan, {1: 0.5, 8: 2.0, 40: 4.0})
    untimed = with_times(plan, {})
    said = []
    assert keep_faster([first, first, first], [slower, faster, untimed], said.append) == [first, faster, untimed]
    assert len(said) == 1 and "keeping the first" in said[0]


def test_numpy_timer_times_in_a_process_of_its_own():
    from tvm_morello.measure.numpy_timer import NumpyTimer

    with NumpyTimer() as numpy_timer:
        plain = numpy_timer.time((4, 32), (32, 16), False)
        transposed = numpy_timer.time((2, 4, 32), (2, 16, 32), True)  # batched, B stored [b, n, k]
        streamed = numpy_timer.time((4, 32), (32, 16), False, copies=3)  # B from three copies in turn
        pid = numpy_timer.proc.pid
    assert all(seconds > 0 and math.isfinite(seconds) for seconds in (plain, transposed, streamed))
    assert pid != os.getpid() and numpy_timer.proc.returncode == 0  # the worker ended with the block


def test_wait_until_idle_waits_out_a_busy_process_and_gives_up_on_a_busy_one():
    """The numpy timer's guard against the other side's spinning thread pool: a process busy for a moment is
    waited for (and idle afterwards); one that stays busy past the timeout is not."""
    import time

    import psutil

    from tvm_morello.measure.numpy_timer import wait_until_idle

    def time_of(proc) -> float:
        return sum(psutil.Process(proc.pid).cpu_times()[:2])

    spin = "import time\nend = time.perf_counter() + {}\nwhile time.perf_counter() < end: pass\ninput()"
    brief = subprocess.Popen([sys.executable, "-c", spin.format(0.3)], stdin=subprocess.PIPE, text=True)
    busy = subprocess.Popen([sys.executable, "-c", spin.format(30)], stdin=subprocess.PIPE, text=True)
    try:
        assert wait_until_idle(psutil.Process(brief.pid), timeout_s=10.0)
        used = time_of(brief)
        time.sleep(0.1)
        assert used > 0.1 and time_of(brief) == used  # it did spin, and had stopped when the wait returned
        assert not wait_until_idle(psutil.Process(busy.pid), timeout_s=0.5)
    finally:
        for proc in (brief, busy):
            proc.kill()
            proc.wait()


def test_a_dense_dispatcher_takes_an_activation_of_any_rank_as_m_rows():
    import tvm

    from tvm_morello.codegen.panels import pack_panels_array
    from tvm_morello.library.modules import build_modules, called_ranks

    plan, qk = _plans()[0], _plans()[1]  # dense: n = 96, k = 64; kernel 0 up to m = 5, kernel 1 beyond
    assert called_ranks("dense__dispatch", ["dense__dispatch__rank3", "dense__dispatch", "dense__dispatch__add_1"]) == [2, 3]
    assert called_ranks("dense__dispatch", None) == [2]
    rank4 = plan.dispatcher_for(None, 4)
    _, modules = build_modules([plan], TARGET, called=[rank4])
    ((kernels, target),) = modules
    assert {g.name_hint for g in kernels.get_global_vars()} == {rank4, plan.kernel_name(0), plan.kernel_name(1),
                                                                "dense__pack"}
    lib = tvm.tirx.build(kernels, target=target)
    rng = np.random.default_rng(0)
    w = rng.uniform(-1, 1, (96, 64)).astype("float32")  # [n, k], dense's layout
    packed = tvm.runtime.tensor(pack_panels_array(w, 32, transpose_b=True))
    for shape in [(1, 1, 1), (1, 5, 1), (2, 3, 4), (5, 1, 7)]:  # m = 1, 5 (kernel 0), 24, 35 (kernel 1)
        x = rng.uniform(-1, 1, (*shape, 64)).astype("float32")
        out = tvm.runtime.tensor(np.zeros((*shape, 96), "float32"))
        lib[rank4](tvm.runtime.tensor(x), packed, out)
        np.testing.assert_allclose(out.numpy(), x @ w.T, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="shape outside the declared range"):  # m = 42 > 40
        lib[rank4](tvm.runtime.tensor(np.zeros((3, 7, 2, 64), "float32")), packed,
                   tvm.runtime.tensor(np.zeros((3, 7, 2, 96), "float32")))
    with pytest.raises(ValueError, match="only a dense layer"):
        build_modules([qk], TARGET, called=[qk.dispatcher_for(None, 3)])
