"""Lowered programs compute exactly what numpy computes, for every operator kind and awkward shapes."""
import numpy as np
import pytest
import tvm

from tvm_morello import InvalidShapeError, UnsupportedOperatorError
from tvm_morello.codegen import candidate_schedules, plan_loops
from tvm_morello.spec.operators import batch_matmul, dense, make_workload, matmul


def run(schedule, workload, arrays):
    import tvm_morello

    lib = tvm.compile(schedule.mod, target=tvm_morello.detect_cpu().tvm_target()).jit()
    dev = tvm.cpu()
    out = tvm.runtime.tensor(np.zeros(workload.output_shape, "float32"), dev)
    lib["main"](*[tvm.runtime.tensor(a, dev) for a in arrays], out)
    return out.numpy()


def check_all_candidates(workload, top_k=3):
    arrays = workload.random_inputs()
    expected = workload.reference(*arrays)
    candidates = candidate_schedules(workload.func, top_k=top_k)
    assert candidates, "every supported operator has at least the scalar program"
    for candidate in candidates:
        got = run(candidate.schedule, workload, arrays)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4, err_msg=candidate.program.render())
    return candidates


@pytest.mark.parametrize(
    "m, k, n",
    [(1, 64, 64), (7, 32, 48), (113, 64, 32), (16, 513, 32), (8, 16, 513), (7, 7, 7), (1, 1, 1), (513, 16, 16)],
)
def test_dense_matches_numpy_on_awkward_shapes(m, k, n):
    check_all_candidates(dense(m, k, n))


def test_vector_kernel_is_used_when_shapes_allow(host):
    candidates = check_all_candidates(dense(64, 64, 128))
    best = candidates[0].program
    assert best.kernel == "broadcast_fma"
    mr, nr = best.register_tile()
    assert nr % host.lanes() == 0
    text = candidates[0].schedule.mod.script()
    assert "T.vectorized" in text and "T.parallel" in text


@pytest.mark.parametrize("workload", [dense(1, 64, 64), dense(3, 48, 50), batch_matmul(3, 5, 32, 7),
                                      batch_matmul(2, 1, 64, 37)], ids=lambda w: w.name)
def test_dot_form_matches_numpy(host, workload):
    # GEMVs, odd n and short batched A Bᵀ: lane accumulators, k split into whole vectors, lanes summed by
    # vectorised halvings, padded n tiles
    from tvm_morello.cost import CostConstants

    arrays = workload.random_inputs()
    expected = workload.reference(*arrays)
    candidates = [c for c in candidate_schedules(workload.func, host, top_k=24, constants=CostConstants())
                  if c.program.kernel == "dot"]
    assert candidates, "whole k-vectors with B stored [n, k] admit the dot form"
    for candidate in candidates[:4]:
        got = run(candidate.schedule, workload, arrays)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4, err_msg=candidate.program.render())
        # register buffers: the partial sums (whole vectors), then one per halving down to a pair (16: 8, 4, 2)
        registers = candidate.schedule.mod.script().count('scope="local"')
        partial_sums = _partial_sums(candidate.schedule)
        assert partial_sums % host.lanes() == 0
        assert registers == partial_sums.bit_length() - 1, candidate.program.render()


def _partial_sums(schedule) -> int:
    """Partial sums a dot-form schedule keeps per output: the last extent of its accumulators' buffer."""
    return int(schedule.mod["main"].body.block.alloc_buffers[0].shape[-1])


def test_dot_tiles_keep_their_weight_loads_in_flight(cpu):
    # one chain of FMAs per weight row reads the row at the pace of the FMA's latency (a 1 x 4096 x 1024 GEMV:
    # 0.70-0.75 of the read bandwidth on Zen 4, 0.83-0.90 with two chains): a dot tile holds as many vectors of
    # partial sums per output as keep stream_bytes_in_flight of its weight rows loading, and no more
    chained = 0
    for workload in (dense(1, 4096, 1024), dense(1, 4096, 1)):
        for candidate in candidate_schedules(workload.func, cpu, top_k=8):
            if candidate.program.kernel != "dot":
                continue
            rows_of_weights = plan_loops(candidate.program).sizes["n"][-1:] or workload.output_shape[-1:]
            bytes_per_chain = rows_of_weights[0] * cpu.vector_bits // 8
            chains = _partial_sums(candidate.schedule) // cpu.lanes()
            assert chains * bytes_per_chain >= cpu.stream_bytes_in_flight, candidate.program.render()
            assert chains == 1 or (chains // 2) * bytes_per_chain < cpu.stream_bytes_in_flight
            chained += chains > 1
    assert chained, "a one-row weight tile needs more than one chain on every x86 vector width"


def _predicated_blocks(schedule) -> set[str]:
    """Names of the blocks whose realize has a predicate (``T.where``, printed before the block's reads)."""
    found = set()
    for chunk in schedule.mod.script().split('with T.sblock("')[1:]:
        name, body = chunk.split('"', 1)
        if "T.where(" in body.split("T.reads(", 1)[0]:
            found.add(name)
    return found


@pytest.mark.parametrize("workload", [dense(37, 64, 50), dense(1500 // 20, 32, 96), batch_matmul(3, 13, 64, 29),
                                      batch_matmul(2, 19, 23, 37, transpose_b=False), matmul(21, 16, 40)])
def test_partial_outer_product_tiles_are_padded_not_predicated(host, workload):
    # a tile that does not divide m or n is padded (pad_einsum): the kernel's blocks carry no predicate (one
    # on a vector's lanes scalarises the kernel); only the copy of the valid part out is predicated
    arrays = workload.random_inputs()
    expected = workload.reference(*arrays)
    candidates = [c for c in candidate_schedules(workload.func, host, top_k=8)
                  if c.program.kernel == "broadcast_fma"]
    padded = [c for c in candidates if "_pad" in c.schedule.mod.script()]
    assert padded, "m or n is not a multiple of the register tile: some outer-product program pads"
    for candidate in candidates:
        got = run(candidate.schedule, workload, arrays)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4, err_msg=candidate.program.render())
        predicated = _predicated_blocks(candidate.schedule)
        assert not any(name.endswith(("_update", "_init")) for name in predicated), candidate.program.render()


def _pack_kernels(program):
    return {str(node.action) for node in program.walk() if str(node.action).startswith("pack_panels")}


def _pack_is_vectorized(schedule):
    loops = schedule.get_loops(schedule.get_sblock("W_global"))
    return any(schedule.get(loop).kind == tvm.tirx.ForKind.VECTORIZED for loop in loops)


def test_pack_stores_whole_panel_rows_when_k_and_n_are_whole_blocks(cpu):
    candidates = [c for c in candidate_schedules(dense(32, 64, 128).func, cpu, top_k=3) if c.program.packs_rhs]
    assert candidates, "a column-major weight is packed before the broadcast kernel can use it"
    for candidate in candidates:
        assert _pack_kernels(candidate.program) == {"pack_panels_vector"}
        assert _pack_is_vectorized(candidate.schedule)


def test_pack_falls_back_to_elementwise_copy_for_a_partial_k_block(cpu):
    partial_k = cpu.lanes() + cpu.lanes() // 2  # one and a half lanes x lanes blocks
    candidates = [c for c in candidate_schedules(dense(16, partial_k, 64).func, cpu, top_k=3) if c.program.packs_rhs]
    assert candidates
    for candidate in candidates:
        assert _pack_kernels(candidate.program) == {"pack_panels"}
        assert not _pack_is_vectorized(candidate.schedule)


@pytest.mark.parametrize("k", [64, 24, 12])
def test_packed_dense_matches_numpy_with_whole_and_partial_blocks(k):
    check_all_candidates(dense(16, k, 64))


def test_matmul_nn_matches_numpy():
    check_all_candidates(matmul(17, 32, 48))


@pytest.mark.parametrize("m", [24, 37])
def test_prepacked_dense_matches_numpy(host, m):
    from tvm_morello.search import synthesize
    from tvm_morello.spec.recognize import recognize

    workload = dense(m, 32, 64, prepacked=32)
    candidates = check_all_candidates(workload, top_k=8)
    assert all(c.program.packs_rhs == 0 for c in candidates)  # the weights are already in panels
    # every program lowers, rows that are no multiple of the row tile too (panels cannot be padded)
    assert len(candidates) == len(synthesize(recognize(workload.func, host).spec, host, top_k=8))


@pytest.mark.parametrize("transpose_b", [True, False])
def test_batch_matmul_matches_numpy(transpose_b):
    check_all_candidates(batch_matmul(3, 17, 32, 48, transpose_b=transpose_b))


def test_loop_plan_follows_the_program():
    candidate = candidate_schedules(dense(64, 64, 128).func, top_k=1)[0]
    plan = plan_loops(candidate.program)
    mr, nr = candidate.program.register_tile()
    assert plan.sizes["m"][-1] == mr and plan.sizes["n"][-1] == nr
    assert plan.kernel == "broadcast_fma" and plan.registers_at is not None


def test_unknown_operator_and_bad_shapes_are_named():
    with pytest.raises(UnsupportedOperatorError, match="conv2d"):
        make_workload("conv2d", (1, 2, 3))
    with pytest.raises(InvalidShapeError, match="0x4x4"):
        make_workload("dense", (0, 4, 4))
    with pytest.raises(InvalidShapeError, match="4 dimensions"):
        make_workload("batch_matmul", (4, 4, 4))
