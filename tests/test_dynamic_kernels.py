"""Shape-generic micro-kernels are exact at every remainder and have no bounds check in the hot loop."""
import tvm_morello  # noqa: F401  (before tvm)

from dataclasses import replace

import numpy as np
import pytest

from tvm_morello import dynamic as dyn
from tvm_morello.codegen import kernel_funcs as kernels
from tvm_morello.codegen.microkernel import RESERVED_VREGS, MicroKernel
from tvm_morello.dynamic.candidates import candidate_microkernels, hardware_microkernels
from tvm_morello.dynamic.jobs import workload_candidates

TARGET = tvm_morello.resolve_target(None)
PANEL = 32

WORKLOADS = {
    "dense": dyn.dense(96, 64, (1, 40)),
    "qk": dyn.batch_matmul(2, "T", 64, "T", {"T": (1, 40)}, transpose_b=True, name="qk"),
    "av": dyn.batch_matmul(2, "T", "T", 64, {"T": (1, 40)}, transpose_b=False, name="av"),
}


def _run(workload, micro, values, panel=PANEL):
    import tvm

    target = TARGET.tvm_target()
    kernel = tvm.compile(kernels.kernel_schedule(workload, micro, panel, TARGET).mod,
                         target=kernels.kernel_target(micro, TARGET)).jit()
    pack = None
    if workload.constant_b:
        pack = tvm.compile(tvm.IRModule({"main": kernels.pack_weights_func(workload, panel)}), target=target).jit()
    rng = np.random.default_rng(0)
    for value in values:
        env = {workload.var_names[0]: value}
        a_shape, b_shape = workload.input_shapes(env)
        a = rng.standard_normal(a_shape, dtype=np.float32)
        b = rng.standard_normal(b_shape, dtype=np.float32)
        b_arg = tvm.runtime.tensor(b)
        if pack is not None:
            packed = tvm.runtime.tensor(np.full((-(-workload.n // panel), workload.k, panel), np.nan, "float32"))
            pack["main"](b_arg, packed)
            b_arg = packed
        out = tvm.runtime.tensor(np.full(workload.output_shape(env), np.nan, "float32"))
        kernel["main"](tvm.runtime.tensor(a), b_arg, out)
        np.testing.assert_allclose(out.numpy(), workload.reference(a, b), rtol=1e-4, atol=1e-4,
                                   err_msg=f"{workload.name} {micro} at {env}")


@pytest.mark.parametrize("name", sorted(WORKLOADS))
@pytest.mark.parametrize("micro", [MicroKernel(4, 32), MicroKernel(6, 16), MicroKernel(1, 32, parallel=False)],
                         ids=lambda mk: mk.key)
def test_kernel_exact_at_tile_boundaries(name, micro):
    tile = micro.mr
    _run(WORKLOADS[name], micro, sorted({1, max(tile - 1, 1), tile, tile + 1, 2 * tile + 3, 40}))


def test_wide_gemv_tile_with_zero_padded_weight_panels():
    # n = 96 is padded to one 128-wide panel; the padding columns are computed but never stored
    _run(WORKLOADS["dense"], MicroKernel(2, 128), [1, 2, 3, 40], panel=128)


def test_tile_two_panels_wide_past_the_last_panel():
    # n = 96 fills three 32-wide panels: the second 64-wide tile's upper half would read a fourth; it reads the
    # third again, and those columns are never stored
    _run(WORKLOADS["dense"], MicroKernel(2, 64), [1, 2, 3, 40], panel=32)
    _run(WORKLOADS["dense"], MicroKernel(3, 64), [1, 4, 40], panel=16)  # six 16-wide panels, 4 per tile


def test_clamp_only_where_a_tile_can_pass_the_last_panel():
    def has_clamp(workload, micro, panel):
        return "Bp[T.min(" in kernels.kernel_schedule(workload, micro, panel, TARGET).mod.script()

    assert has_clamp(WORKLOADS["dense"], MicroKernel(2, 64), 32)
    assert not has_clamp(WORKLOADS["dense"], MicroKernel(2, 32), 16)  # six panels: whole 32-wide tiles
    assert not has_clamp(WORKLOADS["dense"], MicroKernel(2, 16), 32)  # a tile inside one panel


def test_hot_loop_has_no_predicate():
    sch = kernels.kernel_schedule(WORKLOADS["dense"], MicroKernel(4, 32), PANEL, TARGET)
    update = sch.get(sch.get_sblock("acc_update"))
    realize_text = sch.mod.script()
    assert "T.where" in realize_text  # only the tile write-back is predicated
    body = realize_text[realize_text.index('T.sblock("acc_update")'):realize_text.index('T.sblock("Y")')]
    assert "T.where" not in body, body
    assert update is not None


@pytest.mark.parametrize("micro", [MicroKernel(2, 4, dot=True), MicroKernel(2, 4, parallel=False, dot=True),
                                   MicroKernel(1, 1, dot=True),
                                   MicroKernel(3, 5, dot=True)], ids=lambda mk: mk.key)
def test_dot_kernel_exact_at_tile_boundaries(micro):
    # QK^T: T is both m (row tiles of MR) and n (column tiles of NR); every remainder of both
    _run(WORKLOADS["qk"], micro, sorted({1, 2, micro.mr + 1, micro.nr, micro.nr + 1, 2 * micro.nr + 3, 40}))


def test_dot_kernel_parallel_over_a_large_batch_is_exact():
    wide = replace(WORKLOADS["qk"], batch=4 * kernels.BATCH_UNITS_PER_CORE * TARGET.cores)
    assert kernels.dot_parallel_over_batch(wide, TARGET.cores)
    assert not kernels.dot_parallel_over_batch(WORKLOADS["qk"], TARGET.cores)
    _run(wide, MicroKernel(2, 4, dot=True), [1, 3, 4, 5, 40])


def test_only_dot_kernels_reassociate_their_sums(cpu):
    # the dot form's lane sums need reassociation to vectorise; the outer-product form keeps IEEE order
    assert kernels.kernel_target(MicroKernel(2, 4, dot=True), cpu).attrs.get("fast-math-reassoc")
    assert not kernels.kernel_target(MicroKernel(4, 32), cpu).attrs.get("fast-math-reassoc", False)


def test_dot_kernel_needs_transposed_activation_with_vector_k(cpu):
    lanes = cpu.lanes()
    assert kernels.supports_dot(WORKLOADS["qk"], lanes)
    assert not kernels.supports_dot(WORKLOADS["av"], lanes)  # B[k, n]: rows are not k-vectors
    assert not kernels.supports_dot(WORKLOADS["dense"], lanes)  # weights are prepacked into panels
    assert not kernels.supports_dot(replace(WORKLOADS["qk"], k=lanes + 1), lanes)
    with pytest.raises(ValueError, match="dot form"):
        kernels.kernel_schedule(WORKLOADS["av"], MicroKernel(1, 4, dot=True), PANEL, cpu)


def test_dot_candidates_only_where_supported(cpu):
    from tvm_morello.dynamic.config import TuningConfig
    from tvm_morello.dynamic.jobs import workload_candidates

    config = TuningConfig(max_candidates=2)
    assert any(mk.dot for mk in workload_candidates(WORKLOADS["qk"], cpu, config))
    assert not any(mk.dot for mk in workload_candidates(WORKLOADS["av"], cpu, config))
    assert not any(mk.dot for mk in workload_candidates(WORKLOADS["qk"], cpu, TuningConfig(max_candidates=2,
                                                                                             dot_kernels=False)))


def test_microkernel_key_round_trip():
    for micro in (MicroKernel(4, 64), MicroKernel(1, 32, parallel=False), MicroKernel(2, 4, dot=True),
                  MicroKernel(1, 4, parallel=False, dot=True)):
        assert MicroKernel.from_key(micro.key) == micro
    with pytest.raises(ValueError, match="mrMR_nrNR"):
        MicroKernel.from_key("4x64")


def test_serial_kernel_has_no_parallel_loop():
    text = kernels.kernel_schedule(WORKLOADS["qk"], MicroKernel(1, 32, parallel=False), PANEL, TARGET).mod.script()
    assert "T.parallel" not in text
    assert "T.parallel" in kernels.kernel_schedule(WORKLOADS["qk"], MicroKernel(1, 32), PANEL, TARGET).mod.script()


def test_hardware_candidates_fit_register_file(cpu):
    tiles = hardware_microkernels(cpu)
    lanes = cpu.lanes()
    assert tiles and all(t.nr % lanes == 0 for t in tiles)
    assert all(t.accumulators(lanes) + RESERVED_VREGS <= cpu.vector_registers for t in tiles)
    assert MicroKernel(4, 2 * lanes) in tiles and MicroKernel(8, lanes) in tiles
    # 16 accumulators and the reserved registers fit 32 zmm registers, not 16 ymm registers
    assert (MicroKernel(4, 4 * lanes) in tiles) == (cpu.vector_registers >= 16 + RESERVED_VREGS)


def test_candidates_come_from_the_morello_dp(cpu):
    from tvm_morello.dynamic.candidates import dp_microkernels

    ranked = dp_microkernels(cpu, 64, 64)
    assert ranked, "the Morello DP gave no register tiles"
    assert all(t.fits(cpu) for t in ranked)
    assert candidate_microkernels(cpu, 64, 64, source="dp", limit=3) == list(ranked[:3])
    auto = candidate_microkernels(cpu, 64, 64, source="auto", limit=3)
    assert auto[:3] == list(ranked[:3]) and len(auto) == len(set(auto))
    # beside them, every height the register file holds, at its widest within n = 64: each small m then has a
    # tile that pads it little (m = 5 on a 5-row tile, not two passes of a 4-row one), GEMV-like m = 1 a one-row one
    lanes, hardware = cpu.lanes(), hardware_microkernels(cpu)
    heights = sorted({t.mr for t in hardware})
    assert {5, 6} <= set(heights) and heights == sorted({t.mr for t in auto})
    for mr in heights:
        widest = max(t.accumulators(lanes) for t in hardware if t.mr == mr and t.nr <= 64)
        assert any(t.mr == mr and t.nr <= 64 and t.accumulators(lanes) == widest for t in auto)
    narrow = candidate_microkernels(cpu, 64, 64, source="auto", limit=3, usable=lambda t: t.nr <= 32)
    assert MicroKernel(2, 32) in narrow and all(t.nr <= 32 for t in narrow)


def test_candidate_limit_keeps_spread(cpu):
    tiles = candidate_microkernels(cpu, 64, 128, source="hardware", limit=4)
    assert len(tiles) == 4
    assert min(t.mr for t in tiles) == 1 and max(t.mr for t in tiles) >= 6


def test_workload_from_prim_func():
    from tvm import te

    m = te.var("m", "int64")
    x = te.placeholder((m, 64), name="X")
    w = te.placeholder((96, 64), name="W")
    k = te.reduce_axis((0, 64), "k")
    y = te.compute((m, 96), lambda i, j: te.sum(x[i, k] * w[j, k], axis=k), name="Y")
    wl = dyn.from_prim_func(te.create_prim_func([x, w, y]), {"m": (1, 50)})
    assert (wl.batch, wl.m, wl.k, wl.n, wl.transpose_b, wl.constant_b) == (0, "m", 64, 96, True, True)

    t = te.var("T", "int64")
    a = te.placeholder((2, t, t), name="A")
    v = te.placeholder((2, t, 64), name="V")
    r = te.reduce_axis((0, t), "r")
    o = te.compute((2, t, 64), lambda b, i, j: te.sum(a[b, i, r] * v[b, r, j], axis=r), name="O")
    wl = dyn.from_prim_func(te.create_prim_func([a, v, o]), {"T": (1, 9)})
    assert (wl.batch, wl.m, wl.k, wl.n, wl.transpose_b, wl.constant_b) == (2, "T", "T", 64, False, False)


def test_workload_rejects_unknown_symbol_and_static_m():
    with pytest.raises(tvm_morello.InvalidShapeError, match="no declared range"):
        dyn.batch_matmul(2, "T", 64, "S", {"T": (1, 8)})
    with pytest.raises(tvm_morello.UnsupportedOperatorError, match="static"):
        dyn.batch_matmul(2, 8, 64, "T", {"T": (1, 8)})


def test_weight_panel_is_shared_and_tuned_tiles_read_whole_panels(cpu):
    lanes = cpu.lanes()
    micros = [MicroKernel(8, lanes), MicroKernel(4, 2 * lanes), MicroKernel(4, 4 * lanes),
              MicroKernel(1, lanes, parallel=False)]
    panel = kernels.choose_panel(WORKLOADS["dense"], micros, lanes)
    assert panel == kernels.WEIGHT_PANEL_VECTORS * lanes
    assert all(panel % mk.nr == 0 or mk.nr % panel == 0 for mk in micros)
    weights = dyn.dense(768, 3072, (1, 64))
    tuned = workload_candidates(weights, cpu, dyn.TuningConfig())
    assert tuned and all(mk.nr % panel == 0 and mk.nr <= kernels.WEIGHT_TILE_VECTORS * lanes for mk in tuned)
    assert kernels.choose_panel(weights, tuned, lanes) == panel
    with pytest.raises(ValueError, match="neither divide nor are multiples"):
        kernels.choose_panel(WORKLOADS["dense"], [MicroKernel(1, 3 * lanes)], lanes)
    # activations are packed per call in each kernel's own NR: no shared width is forced on them
    assert kernels.choose_panel(WORKLOADS["qk"], micros + [MicroKernel(2, 4, dot=True)], lanes) == 4 * lanes
    with pytest.raises(ValueError, match="do not all divide"):
        kernels.choose_panel(WORKLOADS["qk"], [MicroKernel(1, 3 * lanes), MicroKernel(1, 2 * lanes)], lanes)
