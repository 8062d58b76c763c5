"""MorelloSearch(shape_ranges=...) inside ms.tune_tir on a symbolic PrimFunc: shape-generic candidates are
measured at concrete shapes, recorded under the symbolic workload, and a dispatching library is built."""
import tvm_morello  # noqa: F401  (before tvm)

import numpy as np
import tvm
from tvm.s_tir import meta_schedule as ms

from tvm_morello.dynamic import TuningConfig
from tvm_morello.library import build_library_from_database
from tvm_morello.measure.records import records_of
from tvm_morello.testing import host_target, matmul, record_failed, symbolic_dense
from tvm_morello.tune import MorelloSearch, MorelloSpace, cpu_tensor_intrinsics_only, fast_builder, tune

TARGET = host_target()
RANGES = {"m": (1, 64)}


def _symbolic_records(db, func):
    return records_of(db, tvm.IRModule({"main": func}))


def test_tune_tir_symbolic_then_library(tmp_path):
    func = symbolic_dense()
    strategy = MorelloSearch(shape_ranges=RANGES)
    assert strategy._inst.clone().shape_ranges == RANGES  # the Python clone (strategy.clone() goes through FFI)
    with cpu_tensor_intrinsics_only():
        db = ms.tune_tir(tvm.IRModule({"main": func}), TARGET.tvm_target(), str(tmp_path / "ms"),
                         max_trials_global=6, num_trials_per_iter=3, space=MorelloSpace(), strategy=strategy,
                         builder=fast_builder(), cost_model="random", num_tuning_cores=1, seed=0)
    records = _symbolic_records(db, func)
    assert len(records) == 6
    assert not any(record_failed(r) for r in records), "a candidate failed"
    keys = {(str(r.trace), tuple(int(d) for d in r.args_info[0].shape)) for r in records}
    assert len(keys) == 6, "a candidate was measured twice"
    assert all(1 <= int(r.args_info[0].shape[0]) <= 64 for r in records)

    # Resumed through tvm_morello.tune.tune (space/cost model chosen for us): only new candidates.
    db = tune(func, TARGET, str(tmp_path / "ms"), 3, num_trials_per_iter=3,
              strategy=MorelloSearch(shape_ranges=RANGES), num_tuning_cores=1, seed=0)
    records = _symbolic_records(db, func)
    assert len(records) == 9
    assert len({(str(r.trace), tuple(int(d) for d in r.args_info[0].shape)) for r in records}) == 9

    lib = build_library_from_database(db, func, RANGES, tmp_path / "lib.so", TARGET,
                                      config=TuningConfig(max_candidates=2, shapes_per_kernel=2))
    vm, manifest = tvm_morello.library.load_library(lib.library)
    assert manifest["operators"][0]["tuning"]["source"] == "meta-schedule database"
    rng = np.random.default_rng(0)
    w = rng.standard_normal((96, 64), dtype=np.float32)
    for m in (1, 13, 64):
        x = rng.standard_normal((m, 64), dtype=np.float32)
        np.testing.assert_allclose(vm["dense"](tvm.runtime.tensor(x), tvm.runtime.tensor(w)).numpy(), x @ w.T,
                                   rtol=1e-4, atol=1e-4)


def test_static_task_unchanged_by_shape_ranges():
    from tvm_morello.tune.symbolic import symbolic_prim_func

    assert symbolic_prim_func(tvm.IRModule({"main": symbolic_dense()})) is not None
    assert symbolic_prim_func(tvm.IRModule({"main": matmul()})) is None


def test_symbolic_source_hands_out_each_candidate_once_then_nothing():
    from tvm_morello.tune.symbolic import SymbolicCandidateSource, _key

    source = SymbolicCandidateSource(symbolic_dense(), RANGES, TARGET)
    total, batches = len(source), []
    while batch := source.next_batch(5):
        batches.append(batch)
    keys = [_key(c.sch.mod, c.args_info) for batch in batches for c in batch]
    assert len(keys) == total == len(set(keys)) and all(len(b) <= 5 for b in batches)
    first = batches[0]
    assert len({str(c.sch.trace) for c in first}) == len(first), "first batch: one shape per kernel"
    assert source.next_batch(5) == []
