"""End-to-end tuning with real measurements (tiny budget): records, provenance, kernel cap, CLI."""
import tvm_morello  # noqa: F401  (before tvm)

import json

import numpy as np
import pytest

from tvm_morello import dynamic as dyn
from tvm_morello.cli.dynamic import main as cli_main
from tvm_morello.dynamic.jobs import plan_jobs
from tvm_morello.dynamic.tuner import CLOSE_CALL_ROUNDS

TARGET = tvm_morello.resolve_target(None)
TINY = dyn.TuningConfig(max_candidates=3, candidate_source="hardware", shapes_per_kernel=2, cap=2,
                        number=2, repeat=1, min_repeat_ms=1)


def test_tune_records_in_database_and_plan_is_consistent(tmp_path):
    from tvm.s_tir import meta_schedule as ms

    wl = dyn.batch_matmul(2, "T", 64, "T", {"T": (1, 32)}, name="qk")
    plans = dyn.tune_dynamic([wl], TARGET, work_dir=tmp_path, config=TINY, show_progress=False)
    plan = plans[0]
    assert 1 <= len(plan.kernels) <= 2
    assert set(plan.tree.kernels_used()) <= set(range(len(plan.kernels)))
    runs = plan.provenance["measurements"]
    # 3 tiles, the three serial kernels and the four dot-form kernels (B is an activation stored [T, 64])
    assert all(r["gflops"] > 0 for r in runs)
    assert len({(r["kernel"], r["shape"]["T"]) for r in runs}) == len(runs)  # one entry per pair: its fastest run
    # the closest calls: two kernels at one shape each, run until each has two records there; + the smallest
    # shape and the small end's largest; in up to two rounds (the second settles the calls the first moved)
    close = [(c["kernel"], c["shape"]["T"]) for c in plan.provenance["close_calls"]]
    assert 0 < len(close) <= CLOSE_CALL_ROUNDS * 2 * (TINY.close_calls + 2) and len(set(close)) == len(close)
    assert all(len({k for k, t in close if t == shape}) >= 2 for _, shape in close)
    jobs = plan_jobs(wl, TARGET, TINY).jobs
    assert len(jobs) > (3 + 3 + 4) * 2  # parallel kernels: also at the small end's largest shape
    planned = {(r["kernel"], r["shape"]["T"]) for r in runs[:len(jobs)]}  # the tuning jobs' runs come first
    assert {(r["kernel"], r["shape"]["T"]) for r in runs} == planned | set(close)
    lanes = TARGET.lanes()
    assert {f"mr1_nr{lanes}_serial", f"mr2_nr{4 * lanes}_serial", f"mr4_nr{lanes}_serial", "dot_mr1_nr1",
            "dot_mr2_nr4", "dot_mr1_nr1_serial", "dot_mr2_nr4_serial"} <= set(plan.provenance["candidates"])
    db = ms.database.JSONDatabase(work_dir=str(tmp_path))
    records = db.get_all_tuning_records()
    assert len(records) == len(runs) + len(close)
    shapes = {tuple(int(d) for d in r.args_info[0].shape) for r in records}
    assert all(s[0] == 2 and s[2] == 64 for s in shapes) and len(shapes) >= 2  # concrete shapes were measured
    # every tuning shape dispatches to a kernel the plan holds
    t = np.arange(1, 33)[:, None]
    assert set(plan.tree.predict(t)) <= set(range(len(plan.kernels)))
    assert "| qk |" in dyn.summary_table(plans)


def test_replan_measures_every_candidate_where_the_library_lost(tmp_path):
    from tvm_morello.dynamic.tuner import replan

    wl = dyn.dense(64, 64, (1, 40), name="d")
    (plan,) = dyn.tune_dynamic([wl], TARGET, work_dir=tmp_path, config=TINY, show_progress=False)
    measurer = dyn.KernelMeasurer(TARGET, tmp_path, number=2, repeat=1, min_repeat_ms=1)
    replanned = replan(plan, [{"m": 3}, {"m": 17}], TARGET, TINY, measurer)
    runs = replanned.provenance["measurements"]
    candidates = set(plan.provenance["candidates"])
    for m in (3, 17):  # every candidate now has a measured time there, beside all the earlier runs
        assert {r["kernel"] for r in runs if r["shape"] == {"m": m}} == candidates
    assert len({(r["kernel"], r["shape"]["m"]) for r in runs}) == len(runs)  # none measured twice
    assert replanned.provenance["replanned_at"] == [{"m": 3}, {"m": 17}]
    assert replanned.provenance["tuning_seconds"] > plan.provenance["tuning_seconds"]
    assert set(replanned.tree.kernels_used()) <= set(range(len(replanned.kernels)))


def test_interrupted_measurement_resumes_from_the_database(tmp_path, monkeypatch):
    from tvm_morello.codegen.kernel_funcs import choose_panel

    scratch = tmp_path / "tmp"  # where the builder's worker processes put their temporary libraries
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    wl = dyn.dense(64, 64, (1, 40))
    micros = [dyn.MicroKernel(2, 16), dyn.MicroKernel(1, 16, parallel=False)]
    panel = choose_panel(wl, micros, TARGET.lanes())
    first_jobs = [(micros[0], {"m": 8}), (micros[1], {"m": 3})]
    first = dyn.KernelMeasurer(TARGET, tmp_path, number=2, repeat=1, min_repeat_ms=1).measure(wl, panel, first_jobs)
    # a new process (new measurer) on the same directory: two recorded jobs, one new
    resumed = dyn.KernelMeasurer(TARGET, tmp_path, number=2, repeat=1, min_repeat_ms=1)
    again = resumed.measure(wl, panel, first_jobs + [(micros[0], {"m": 40})])
    assert [m.seconds for m in again[:2]] == [m.seconds for m in first]  # read back, not re-run
    assert again[2].env_dict == {"m": 40} and again[2].seconds > 0
    assert len(resumed.database.get_all_tuning_records()) == 3
    # asked for two runs of each: one more of each recorded job, and the fastest of its runs counts
    twice = resumed.measure(wl, panel, first_jobs, records=2)
    assert [m.seconds <= f.seconds for m, f in zip(twice, first)] == [True, True]
    assert len(resumed.database.get_all_tuning_records()) == 5
    assert [m.seconds for m in resumed.measure(wl, panel, first_jobs, records=2)] == [m.seconds for m in twice]
    assert not list(scratch.iterdir())  # every built kernel's temporary directory is gone


def test_export_takes_each_kernels_own_record_when_kernels_share_a_workload(tmp_path):
    from tvm_ffi import structural_equal

    from tvm_morello.codegen.kernel_funcs import choose_panel, kernel_schedule
    from tvm_morello.measure.kernels import recorded_kernel

    wl = dyn.batch_matmul(2, "T", "T", 64, {"T": (1, 32)}, transpose_b=False, name="av")
    lanes = TARGET.lanes()
    parallel, serial = dyn.MicroKernel(2, 4 * lanes), dyn.MicroKernel(2, 4 * lanes, parallel=False)
    panel = choose_panel(wl, [parallel, serial], lanes)
    measurer = dyn.KernelMeasurer(TARGET, tmp_path, number=1, repeat=1, min_repeat_ms=1)
    measurer.measure(wl, panel, [(serial, {"T": 3}), (parallel, {"T": 24})])  # the serial kernel's record first
    for micro, other in ((parallel, serial), (serial, parallel)):
        replayed = recorded_kernel(measurer.database, wl, micro, panel, TARGET)
        assert structural_equal(replayed, kernel_schedule(wl, micro, panel, TARGET).mod["main"])
        assert not structural_equal(replayed, kernel_schedule(wl, other, panel, TARGET).mod["main"])
    assert recorded_kernel(measurer.database, wl, dyn.MicroKernel(2, 2 * lanes), panel, TARGET) is None


def test_ctrl_c_stops_between_runs_and_keeps_them(tmp_path):
    import os
    import signal

    class CtrlCAfterFirstRun:
        def update(self, n):
            os.kill(os.getpid(), signal.SIGINT)

    wl = dyn.dense(64, 64, (1, 40))
    micro = dyn.MicroKernel(2, 16)
    measurer = dyn.KernelMeasurer(TARGET, tmp_path, number=2, repeat=1, min_repeat_ms=1)
    jobs = [(micro, {"m": m}) for m in (1, 8, 40)]
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match=f"1 runs are kept in {tmp_path}"):
        measurer.measure(wl, 16, jobs, CtrlCAfterFirstRun())
    assert len(measurer.database.get_all_tuning_records()) == 1
    assert signal.getsignal(signal.SIGINT) is handler  # the caller's Ctrl-C works again
    assert len(dyn.KernelMeasurer(TARGET, tmp_path, number=2, repeat=1, min_repeat_ms=1).measure(wl, 16, jobs)) == 3


def test_an_interrupted_model_tune_names_the_work_directory_to_pass_again(tmp_path):
    import os
    import signal

    from tvm_morello.measure.kernels import records_dir

    class CtrlCAfterFirstRun:
        def update(self, n):
            os.kill(os.getpid(), signal.SIGINT)

    measurer = dyn.KernelMeasurer(TARGET, tmp_path, number=1, repeat=1, min_repeat_ms=1, streamed_bytes=1 << 20)
    with pytest.raises(KeyboardInterrupt, match=f"1 runs are kept in {tmp_path}: tune again"):
        measurer.measure(dyn.dense(64, 64, (1, 40)), 16, [(dyn.MicroKernel(1, 16), {"m": m}) for m in (1, 8)],
                         CtrlCAfterFirstRun())
    # a model's streamed runs sit in a folder of its work directory
    assert len(dyn.KernelMeasurer(TARGET, records_dir(tmp_path, 1 << 20)).database.get_all_tuning_records()) == 1


def test_cli_writes_library_and_manifest(tmp_path, capsys):
    out = tmp_path / "dense.so"
    code = cli_main(["tune-dynamic", "--op", "dense", "--n", "64", "--k", "64", "--m-range", "1:24", "--out", str(out),
                     "--work-dir", str(tmp_path / "db"), "--max-candidates", "2", "--shapes-per-kernel", "1",
                     "--candidates", "hardware", "--quiet"])
    assert code == 0
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert out.exists() and manifest["operators"][0]["workload"]["ranges"]["m"] == {"lo": 1, "hi": 24, "sample": [],
                                                                                     "weights": []}
    assert manifest["operators"][0]["tuning"]["candidates"]
    # the CLI times the library against numpy before writing it: the smallest and the largest tuned m among them
    check = manifest["operators"][0]["tuning"]["speed_check"]
    checked = [p["shape"]["m"] for p in check["points"]]
    assert min(checked) == 1 and max(checked) == 24 and len(checked) == 12
    assert all(p["seconds"] > 0 and p["numpy_seconds"] > 0 for p in check["points"]) and check["geomean_vs_numpy"] > 0
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--m-range", "0:64"], "range 0..64: need 1 <= lo <= hi"),
    (["--m-range", "1-64"], "range '1-64': expected LO:HI"),
    (["--range", "m1:64"], "expected NAME=LO:HI"),
])
def test_cli_names_a_bad_range(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["tune-dynamic", "--op", "dense", "--n", "64", "--k", "64", *args, "--out", str(tmp_path / "x.so")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.so").exists()


def test_cli_bert_base_preset_declares_the_five_matmuls():
    from tvm_morello.cli import build_parser
    from tvm_morello.cli.dynamic import workloads_from_args

    args = build_parser().parse_args(["tune-dynamic", "--op", "bert-base", "--batch", "2", "--range", "T=1:64",
                                      "--out", "bert.so"])
    workloads = {wl.name: wl for wl in workloads_from_args(args)}
    assert set(workloads) == {"dense_qkv", "dense_ffn1", "dense_ffn2", "bmm_qk", "bmm_av"}
    assert workloads["dense_ffn1"].dims({"m": 2 * 64}) == (1, 128, 768, 3072)  # (batch, m, k, n)
    assert workloads["dense_qkv"].range_of("m").values() == tuple(range(2, 129, 2))  # m = batch * T
    assert workloads["bmm_av"].dims({"T": 64}) == (24, 64, 64, 64)  # batch * 12 heads
    assert workloads["bmm_qk"].range_of("T") == dyn.VarRange(1, 64)


def test_cli_dense_without_k_names_the_missing_option(tmp_path, capsys):
    from tvm_morello.cli import main

    assert main(["tune-dynamic", "--op", "dense", "--n", "64", "--m-range", "1:8", "--out", str(tmp_path / "x.so")]) == 2
    assert "dense needs --k and --n" in capsys.readouterr().err


def test_runner_reuses_an_argument_whose_shape_did_not_change():
    import tvm

    from tvm_morello.measure.kernels import reuse_unchanged_arguments

    dev = tvm.cpu()
    first = reuse_unchanged_arguments(dev, [("TENSOR", "float32", [3, 8]), ("TENSOR", "float32", [2, 8, 16]),
                                            ("TENSOR", "float32", [3, 16])], 1)[0]
    second = reuse_unchanged_arguments(dev, [("TENSOR", "float32", [5, 8]), ("TENSOR", "float32", [2, 8, 16]),
                                             ("TENSOR", "float32", [5, 16])], 1)[0]
    assert second[1] is first[1]  # the weight panel: made and filled once
    assert tuple(second[0].shape) == (5, 8) and second[0] is not first[0]  # m changed: a new activation
    assert np.abs(first[1].numpy()).max() > 0  # random-filled, not left as allocated
    again = reuse_unchanged_arguments(dev, [("TENSOR", "float32", [5, 16]), ("TENSOR", "float32", [2, 8, 16]),
                                            ("TENSOR", "float32", [5, 8])], 1)[0]
    assert again[0] is not second[2]  # reuse is per position: an input never aliases another's output


def test_a_streamed_weight_is_run_in_copies_that_span_the_models_weights():
    import tvm

    from tvm_morello.measure.kernels import STREAMED_BYTES_CAP, streamed_arguments, streamed_copies

    assert streamed_copies((12, 768, 64), 4, 28 << 20) == 13  # a 2.4 MB weight among 28 MB: 13 copies
    assert streamed_copies((12, 768, 64), 4, 1000) == 1  # a model of one weight: the weight itself
    assert streamed_copies((4, 8, 16), 4, 1 << 40) == STREAMED_BYTES_CAP // (4 * 8 * 16 * 4)  # memory is bounded
    dev = tvm.cpu()
    info = [("TENSOR", "float32", [3, 8]), ("TENSOR", "float32", [2, 8, 16]), ("TENSOR", "float32", [3, 16])]
    lists = streamed_arguments(dev, info, 1, streamed_bytes=3 * 2 * 8 * 16 * 4)
    assert len(lists) == 3
    weights = [args[1] for args in lists]
    assert len({id(w) for w in weights}) == 3  # distinct buffers, the same numbers
    assert all(np.array_equal(w.numpy(), weights[0].numpy()) for w in weights)
    assert all(args[0] is lists[0][0] and args[2] is lists[0][2] for args in lists)  # A and the output shared
    assert len(streamed_arguments(dev, info, 1, streamed_bytes=0)) == 1


def test_streamed_runs_call_every_copy_in_turn():
    from types import SimpleNamespace

    from tvm_morello.measure.kernels import time_streamed

    seen = []

    class Module:
        entry_name = "main"

        def __getitem__(self, name):
            assert name == "main"
            return lambda *args: seen.append(args[1])

    lists = [["a", f"w{i}", "out"] for i in range(3)]
    config = SimpleNamespace(repeat=4, min_repeat_ms=0)
    costs = time_streamed(Module(), None, config, lists)
    assert len(costs) == 4 and all(c > 0 for c in costs)
    assert seen == ["w2", "w0", "w1", "w2", "w0"]  # a first call, then one per repeat: the copies in turn
    seen.clear()
    time_streamed(Module(), None, SimpleNamespace(repeat=2, min_repeat_ms=5), lists)
    assert len(seen) > 3 and all(w == f"w{(i - 1) % 3}" for i, w in enumerate(seen))  # around and around


def test_a_measurer_streams_a_prepacked_weights_copies(tmp_path):
    wl = dyn.dense(64, 64, (1, 40))
    measurer = dyn.KernelMeasurer(TARGET, tmp_path, number=1, repeat=2, min_repeat_ms=1, streamed_bytes=1 << 20)
    (run,) = measurer.measure(wl, 16, [(dyn.MicroKernel(1, 16), {"m": 3})])
    assert run.seconds > 0 and run.env_dict == {"m": 3}
    assert measurer.weight_runner is not measurer.runner
    (record,) = measurer.weight_database.get_all_tuning_records()
    assert len(record.run_secs) == 2  # a figure per repeat from the copies' runner, in its own worker
    assert measurer.records_for(wl) == tmp_path / "streamed_1048576" and not measurer.database.get_all_tuning_records()


def test_runs_without_a_constant_weight_are_shared_by_models_of_any_size(tmp_path):
    from tvm_morello.codegen.kernel_funcs import choose_panel

    wl = dyn.batch_matmul(2, "T", "T", 64, {"T": (1, 32)}, transpose_b=False, name="av")
    micro = dyn.MicroKernel(2, 4 * TARGET.lanes())
    panel, jobs = choose_panel(wl, [micro], TARGET.lanes()), [(micro, {"T": 5})]
    first = dyn.KernelMeasurer(TARGET, tmp_path, number=1, repeat=1, min_repeat_ms=1, streamed_bytes=1 << 20)
    (run,) = first.measure(wl, panel, jobs)
    assert first.records_for(wl) == tmp_path and len(first.database.get_all_tuning_records()) == 1
    other = dyn.KernelMeasurer(TARGET, tmp_path, number=1, repeat=1, min_repeat_ms=1, streamed_bytes=300 << 20)
    (resumed,) = other.measure(wl, panel, jobs)  # the first model's run, not measured again
    assert resumed.seconds == pytest.approx(run.seconds, rel=1e-6)
    assert len(other.database.get_all_tuning_records()) == 1
