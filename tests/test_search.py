"""Search invariants: rewrites make progress, more memory never costs more, DP equals brute force."""
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tvm_morello.cost import CostConstants
from tvm_morello.search import Synthesizer, synthesize
from tvm_morello.search.rewrites import actions_for
from tvm_morello.search.table import MemoTable
from tvm_morello.spec import COL, ROW, Level, Matmul, MemoryLimits, Move, Operand, dense_spec, panel
from tvm_morello.spec import Fill, canonicalize

CONSTANTS = CostConstants()
LIMITS = MemoryLimits(32, 512)
small_dims = st.sampled_from([1, 2, 3, 4, 8])
vector_dims = st.sampled_from([1, 16, 32, 48])
layouts = st.sampled_from([ROW, COL, panel(16)])
operands = st.builds(Operand, st.sampled_from([Level.GLOBAL, Level.L2, Level.L1]), layouts)
outputs = st.builds(Operand, st.sampled_from([Level.GLOBAL, Level.VREG]), st.just(ROW))
limits = st.builds(MemoryLimits, st.sampled_from([0, 2, 8, 32]), st.sampled_from([0, 16, 64, 512]))
specs = st.builds(
    Matmul, st.sampled_from([1, 2]), small_dims, small_dims, vector_dims, operands, operands, outputs, limits,
    st.booleans(), st.booleans(),
)


def progress_key(spec):
    """A well-founded order: every sub-spec must be strictly below its parent."""
    if isinstance(spec, (Fill, Move)):
        return (0,)
    levels = spec.lhs.level + spec.rhs.level + spec.out.level
    return (1, spec.volume, -levels, -(spec.rhs.layout.kind == "panel"), -spec.accumulate)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(specs)
def test_every_rewrite_makes_progress(cpu, spec):
    spec = canonicalize(spec)  # the DP only ever solves canonical specs
    for action in actions_for(spec, cpu):
        for sub in action.subspecs(spec, cpu):
            assert progress_key(sub) < progress_key(spec), f"{action} on {spec} gave {sub}"
            if isinstance(sub, Matmul):
                assert sub.limits.covers(MemoryLimits(0, 0))
                assert spec.limits.covers(sub.limits), f"{action} grew the memory limits"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs, limits, limits)
def test_more_memory_never_costs_more(cpu, spec, a, b):
    low = MemoryLimits(min(a.vregs, b.vregs), min(a.l1_lines, b.l1_lines))
    high = MemoryLimits(max(a.vregs, b.vregs), max(a.l1_lines, b.l1_lines))
    poor = Synthesizer(cpu, CONSTANTS, top_k=1).solve(replace(spec, limits=low))
    rich = Synthesizer(cpu, CONSTANTS, top_k=1).solve(replace(spec, limits=high))
    if poor:
        assert rich and rich[0].cost <= poor[0].cost
        assert high.covers(rich[0].peak)


def all_programs(spec, target):
    """Brute force: (cost, signature) of every program for ``spec``, no memo and no pruning."""
    synth = Synthesizer(target, CONSTANTS, top_k=1)
    results = []
    for action in actions_for(spec, target):
        subs = action.subspecs(spec, target)
        options = [all_programs(sub, target) for sub in subs]
        if any(not o for o in options):
            continue
        if not subs:
            program = synth._compose(spec, action, ())
            results.append(program)
            continue
        best_side = [min(o, key=lambda p: p.cost) for o in options]
        for body in options[action.body_index]:
            children = best_side[: action.body_index] + [body] + best_side[action.body_index + 1 :]
            results.append(synth._compose(spec, action, children))
    return results


@pytest.mark.parametrize(
    "spec",
    [
        # small enough to enumerate every program (5k-30k of them)
        Matmul(1, 2, 2, 16, Operand(), Operand(), Operand(), MemoryLimits(8, 64)),
        Matmul(1, 2, 1, 32, Operand(), Operand(Level.GLOBAL, COL), Operand(), MemoryLimits(4, 64)),
        Matmul(1, 3, 2, 3, Operand(), Operand(Level.GLOBAL, COL), Operand(), MemoryLimits(32, 512)),
    ],
)
def test_dp_equals_brute_force(cpu, spec):
    everything = all_programs(spec, cpu)
    best_per_configuration = {}
    for program in everything:
        known = best_per_configuration.get(program.signature)
        if known is None or program.cost < known:
            best_per_configuration[program.signature] = program.cost
    for top_k in (1, 3):
        expected = sorted(best_per_configuration.values())[:top_k]
        found = [p.cost for p in Synthesizer(cpu, CONSTANTS, top_k=top_k).solve(spec)]
        assert found == pytest.approx(expected)
    assert len(everything) > len(found)  # the brute force really had alternatives to choose from


constants = st.builds(CostConstants, *[st.floats(0.0, 100.0)] * len(CostConstants.names()))


@settings(max_examples=50, deadline=None)
@given(st.sampled_from([16, 48, 768]), st.sampled_from([16, 32, 128]), st.sampled_from([16, 32, 64]), constants)
def test_vector_pack_never_costs_more_and_is_chosen(cpu, rows, cols, width, constants):
    from tvm_morello.target.kernels import PackPanels, VectorPackPanels

    move = canonicalize(Move(rows, cols, Operand(Level.GLOBAL, COL), Operand(Level.GLOBAL, panel(width))))
    vector, scalar = VectorPackPanels(), PackPanels()
    assert vector.applies(move, cpu) and scalar.applies(move, cpu)
    assert vector.cost(move, constants, cpu) <= scalar.cost(move, constants, cpu)
    assert str(Synthesizer(cpu, constants, top_k=1).solve(move)[0].action) == "pack_panels_vector"


def test_l2_views_only_for_weight_tiles_between_l1_and_l2(cpu):
    from tvm_morello.search.rewrites import CacheView

    def views(spec):
        return {(a.role, a.level) for a in actions_for(canonicalize(spec), cpu) if isinstance(a, CacheView)}

    half_l2_lines = cpu.l2_bytes // 2 // 64  # what an L2 view may take
    k = half_l2_lines // 8  # a k x 128 tile in 32-wide panels takes 8 lines per k row: exactly half of L2
    wide = Matmul(1, 8, k, 128, Operand(), Operand(Level.GLOBAL, panel(32)), Operand(), MemoryLimits(32, 512))
    assert ("rhs", Level.L2) in views(wide) and ("rhs", Level.L1) not in views(wide)  # more than L1's 512 lines
    assert ("lhs", Level.L2) not in views(wide)  # 8 rows of A fit the 512 L1 lines: no L2 view
    narrow = replace(wide, k=256, n=16)  # 256 lines of B fit L1
    assert views(narrow) >= {("rhs", Level.L1)} and ("rhs", Level.L2) not in views(narrow)
    huge = replace(wide, n=256)  # twice the half of L2 a view may take
    assert not any(role == "rhs" for role, _ in views(huge))
    in_l2 = replace(narrow, rhs=Operand(Level.L2, panel(32)))
    assert ("rhs", Level.L1) in views(in_l2) and ("rhs", Level.L2) not in views(in_l2)


def test_lines_from_l2_cost_l2_line(cpu):
    from tvm_morello.search.rewrites import CacheView

    spec = Matmul(1, 8, 64, 16, Operand(), Operand(Level.L2, panel(16)), Operand(), MemoryLimits(32, 512))
    from_memory = replace(spec, rhs=Operand(Level.GLOBAL, panel(16)))
    lines = 64  # 64 rows of one 16-float panel: one contiguous run of 64 lines
    constants = replace(CONSTANTS, l2_line=3.0, global_line=11.0)
    view = CacheView("rhs", Level.L1)
    assert view.combine(spec, [0.0], constants, cpu) == pytest.approx(3.0 * lines)
    assert view.combine(from_memory, [0.0], constants, cpu) == pytest.approx(11.0 * lines)


def test_packed_weight_larger_than_l2_is_packed_per_column_chunk():
    # dense 2048x768x768: the whole packed W (2.4 MB) exceeds one core's L2 (1 MB); re-reading it for every
    # row tile streams it from L3, so the best program packs W one L2-sized column chunk at a time
    from tvm_morello.search.rewrites import PackRhs
    from tvm_morello.target import CpuTarget

    zen4 = CpuTarget("znver4", 512, 2, l1_bytes=32 * 1024, l2_bytes=1024 * 1024)
    best = synthesize(dense_spec(2048, 768, 768, target=zen4), zen4, top_k=1)[0]
    packs = [p for p in _walk(best) if isinstance(p.action, PackRhs)]
    assert packs and all(p.spec.k * p.spec.n * 4 <= zen4.l2_bytes // 2 for p in packs)
    assert any("view(rhs -> L2)" == str(p.action) for p in _walk(best))


def _walk(program):
    yield program
    for child in program.children:
        yield from _walk(child)


def test_vector_pack_needs_whole_blocks(cpu):
    from tvm_morello.target.kernels import VectorPackPanels

    lanes = cpu.lanes()
    whole = canonicalize(Move(lanes, 2 * lanes, Operand(Level.GLOBAL, COL), Operand(Level.GLOBAL, panel(2 * lanes))))
    assert VectorPackPanels().applies(whole, cpu)
    for rows, cols in ((lanes + lanes // 2, 2 * lanes), (lanes, lanes // 2), (1, 2 * lanes)):
        move = canonicalize(Move(rows, cols, Operand(Level.GLOBAL, COL), Operand(Level.GLOBAL, panel(2 * lanes))))
        assert not VectorPackPanels().applies(move, cpu), (rows, cols)


def test_top_k_is_sorted_and_distinct(cpu):
    programs = synthesize(dense_spec(64, 128, 128, target=cpu), cpu, top_k=6, constants=CONSTANTS)
    assert len(programs) == 6
    costs = [p.cost for p in programs]
    assert costs == sorted(costs)
    assert len({p.signature for p in programs}) == 6


def test_register_tile_fits_the_register_file(cpu):
    for program in synthesize(dense_spec(128, 256, 256, target=cpu), cpu, top_k=8, constants=CONSTANTS):
        tile = program.register_tile()
        if tile is not None and program.kernel != "dot":  # dot tiles: test_dot_tiles_hold_one_vector_per_output
            mr, nr = tile
            assert nr % cpu.lanes() == 0
            assert mr * nr // cpu.lanes() + nr // cpu.lanes() + 1 <= cpu.vector_registers
            assert program.peak.vregs <= cpu.vector_registers


def test_table_serves_a_repeated_synthesis_exactly(cpu, tmp_path):
    spec = dense_spec(64, 256, 128, target=cpu)
    table = MemoTable()
    first = Synthesizer(cpu, CONSTANTS, top_k=4, table=table)
    cold = first.solve(spec)
    stats = table.stats()
    assert stats.points >= first.stats.specs_solved > 0
    assert stats.boxes <= stats.points
    path = tmp_path / "table.pkl"
    table.save(path)
    second = Synthesizer(cpu, CONSTANTS, top_k=4, table=MemoTable.load(path))
    warm = second.solve(spec)
    assert [p.render() for p in warm] == [p.render() for p in cold]
    assert second.stats.specs_solved == 0 and second.stats.served_from_table > 0


def test_table_compresses_neighbouring_specs(cpu):
    table = MemoTable()
    synth = Synthesizer(cpu, CONSTANTS, top_k=1, table=table)
    for m in (64, 128, 256, 512):
        synth.solve(dense_spec(m, 256, 256, target=cpu))
    assert table.stats().compression_ratio > 1.0


def test_cost_falls_as_registers_are_added(cpu):
    spec = dense_spec(16, 32, 64, target=cpu)
    costs = [
        Synthesizer(cpu, CONSTANTS, top_k=1).solve(replace(spec, limits=MemoryLimits(vregs, 512)))[0].cost
        for vregs in (0, 2, 4, 8, 16, 32)
    ]
    assert costs == sorted(costs, reverse=True)
    assert costs[-1] < costs[0]  # registers really buy something: the vector kernel needs them


def test_table_never_serves_another_searchs_answer(cpu):
    spec = dense_spec(32, 64, 64, target=cpu)
    table = MemoTable()
    Synthesizer(cpu, CONSTANTS, top_k=1, table=table).solve(spec)
    other = Synthesizer(cpu, replace(CONSTANTS, global_line=1000.0), top_k=1, table=table)
    fresh = Synthesizer(cpu, replace(CONSTANTS, global_line=1000.0), top_k=1)
    assert other.solve(spec)[0].render() == fresh.solve(spec)[0].render()
    assert other.stats.served_from_table == 0


def test_decode_gemv_takes_the_dot_form_and_no_pack(cpu):
    # y = x Wᵀ at m = 1: packing W into panels would read and write every weight once more per call, for
    # an operator bound by reading them; the dot form reads W[n, k] rows as stored, no n padding to vectors
    from tvm_morello.cost import shipped_constants
    from tvm_morello.cost.constants import isa_of

    for constants in (CONSTANTS, shipped_constants(isa_of(cpu.vector_bits))):
        best = synthesize(dense_spec(1, 4096, 4096, target=cpu), cpu, top_k=1, constants=constants)[0]
        assert best.kernel == "dot" and best.packs_rhs == 0
        assert any(getattr(node.action, "parallel", False) for node in best.main_path())


def test_dot_form_needs_whole_k_vectors_and_k_contiguous_operands(cpu):
    from tvm_morello.search.rewrites import RegisterOut

    def dot_offered(spec):
        return RegisterOut(dot=True) in set(actions_for(canonicalize(spec), cpu))

    lanes = cpu.lanes()
    gemv = Matmul(1, 1, 4 * lanes, 7, Operand(Level.L1), Operand(Level.L1, COL), Operand(), LIMITS)
    assert dot_offered(gemv)
    assert not dot_offered(replace(gemv, k=4 * lanes + 1))  # a partial k-vector
    assert not dot_offered(replace(gemv, rhs=Operand(Level.L1, ROW)))  # B[k, n]: k strided
    assert not dot_offered(replace(gemv, rhs=Operand(Level.L1, panel(lanes))))
    assert not dot_offered(replace(gemv, b=2))  # register tiles are per matrix


def test_dot_tiles_hold_one_vector_per_output(cpu):
    for program in synthesize(dense_spec(50, 64, 50, target=cpu), cpu, top_k=8, constants=CONSTANTS):
        if program.kernel == "dot":
            mr, nr = program.register_tile()
            assert program.peak.vregs >= mr * nr and program.peak.vregs <= cpu.vector_registers


def test_top_k_keeps_the_best_of_each_kernel_family(cpu):
    # the outer-product form ranks first on a large square dense; the dot form still gets a place among the
    # k measured (and calibrated) programs, and never displaces the cheapest program
    spec = dense_spec(512, 512, 512, target=cpu)
    programs = synthesize(spec, cpu, top_k=8, constants=CONSTANTS)
    assert programs[0].family == "broadcast_fma" and "dot" in {p.family for p in programs}
    assert [p.cost for p in programs] == sorted(p.cost for p in programs)
    assert programs[0].tree_key() == synthesize(spec, cpu, top_k=1, constants=CONSTANTS)[0].tree_key()
