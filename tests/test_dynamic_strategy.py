"""Meta-schedule route: a search strategy measures symbolic-PrimFunc schedules at concrete shapes, compile_tir
finds the records for the symbolic workload, and a dispatching library is built from that database."""
import tvm_morello  # noqa: F401  (before tvm)

import numpy as np
import pytest

from tvm_morello import dynamic as dyn
from tvm_morello.tune import fast_builder
from tvm_morello.library import build_library_from_database
from tvm_morello.tune.symbolic import propose_symbolic_candidates
from tvm_morello.testing import symbolic_dense as _symbolic_dense

TARGET = tvm_morello.resolve_target(None)
CONFIG = dyn.TuningConfig(max_candidates=2, candidate_source="hardware", shapes_per_kernel=2)


def _fixed_strategy(candidates):
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms

    @derived_object
    class Proposals(ms.search_strategy.PySearchStrategy):
        def __init__(self, cands):
            self.cands, self.done = cands, False

        def _initialize_with_tune_context(self, context):
            pass

        def pre_tuning(self, max_trials, num_trials_per_iter, design_spaces, database=None, cost_model=None):
            self.done = False

        def post_tuning(self):
            pass

        def generate_measure_candidates(self):
            if self.done:
                return None
            self.done = True
            return [c.measure_candidate() for c in self.cands]

        def notify_runner_results(self, measure_candidates, results):
            pass

        def clone(self):
            return Proposals(self.cands)

    return Proposals(candidates)


def test_proposals_carry_concrete_shapes():
    cands = propose_symbolic_candidates(_symbolic_dense(), {"m": (1, 40)}, TARGET, config=CONFIG)
    assert len(cands) == 2 * 3 + 3 * 2  # two tiles at two shapes and the small end's largest, three serial at two
    assert sum(not c.micro.parallel for c in cands) == 3 * 2
    assert all([int(d) for d in c.args_info[0].shape] == [c.env["m"], 64] for c in cands)
    assert "T.where" not in cands[0].schedule.mod.script().split('T.sblock("Y_update")')[1].split("T.sblock(")[0]


def test_strategy_records_found_by_compile_tir_and_library_built(tmp_path):
    import tvm
    from tvm.s_tir import meta_schedule as ms

    func = _symbolic_dense()
    cands = propose_symbolic_candidates(func, {"m": (1, 40)}, TARGET, config=CONFIG)
    mod = tvm.IRModule({"main": func})
    db = ms.tune_tir(mod, TARGET.tvm_target(), str(tmp_path / "ms"), max_trials_global=len(cands),
                     num_trials_per_iter=len(cands), space=ms.space_generator.ScheduleFn(lambda sch: None),
                     strategy=_fixed_strategy(cands), builder=fast_builder(),
                     cost_model="random")
    records = db.get_all_tuning_records()
    assert len(records) == len(cands)
    assert {int(r.args_info[0].shape[0]) for r in records} == {c.env["m"] for c in cands}
    sch = ms.tir_integration.compile_tir(db, mod, TARGET.tvm_target())
    assert sch is not None
    kernel = tvm.compile(sch.mod, target=TARGET.tvm_target()).jit()
    rng = np.random.default_rng(0)
    w = rng.standard_normal((96, 64), dtype=np.float32)
    for m in (1, 7, 40):
        x = rng.standard_normal((m, 64), dtype=np.float32)
        out = tvm.runtime.tensor(np.zeros((m, 96), "float32"))
        kernel["main"](tvm.runtime.tensor(x), tvm.runtime.tensor(w), out)
        np.testing.assert_allclose(out.numpy(), x @ w.T, rtol=1e-4, atol=1e-4)

    lib = build_library_from_database(db, func, {"m": (1, 40)}, tmp_path / "lib.so", TARGET, config=CONFIG)
    vm, manifest = tvm_morello.library.load_library(lib.library)
    assert manifest["operators"][0]["tuning"]["source"] == "meta-schedule database"
    x = rng.standard_normal((13, 64), dtype=np.float32)
    np.testing.assert_allclose(vm["dense"](tvm.runtime.tensor(x), tvm.runtime.tensor(w)).numpy(), x @ w.T,
                               rtol=1e-4, atol=1e-4)


def test_mixed_index_dtypes_are_reported():
    from tvm import te

    m = te.var("m", "int64")
    x = te.placeholder((m, 64), name="X")
    w = te.placeholder((96, 64), name="W")
    k = te.reduce_axis((0, 64), "k")
    func = te.create_prim_func([x, w, te.compute((m, 96), lambda a, b: te.sum(x[a, k] * w[b, k], axis=k), name="Y")])
    with pytest.raises(tvm_morello.errors.InvalidShapeError, match=r"mix index dtypes \['int32', 'int64'\]"):
        propose_symbolic_candidates(func, {"m": (1, 40)}, TARGET, config=CONFIG)
    fixed = te.create_prim_func([x, w, te.compute((m, 96), lambda a, b: te.sum(x[a, k] * w[b, k], axis=k), name="Y")],
                                index_dtype_override="int64")  # the fix the message names
    assert propose_symbolic_candidates(fixed, {"m": (1, 40)}, TARGET, config=CONFIG)
