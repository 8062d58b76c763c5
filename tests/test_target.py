"""Targets: named CPU models, resolution of target descriptions, the host check, and the stored calibration."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tvm_morello import CpuTarget, UnsupportedTargetError
from tvm_morello.cost import CostConstants, fit_features, shipped_constants
from tvm_morello.cost.store import CACHE_DIR_ENV, Sample, fit_path, load_fit, refit
from tvm_morello.target import KNOWN_CPUS, cpu_model, is_host, require_host, resolve_target

REQUIRED_CPUS = {  # name: (vector bits, vector registers, L2 per core)
    "haswell": (256, 16, 256 * 1024),
    "skylake-avx512": (512, 32, 1024 * 1024),
    "icelake-server": (512, 32, 1280 * 1024),
    "sapphirerapids": (512, 32, 2048 * 1024),
    "znver3": (256, 16, 512 * 1024),
    "znver4": (512, 32, 1024 * 1024),
}


@pytest.mark.parametrize("name", sorted(REQUIRED_CPUS))
def test_known_cpus_carry_their_own_isa_and_caches(name, host):
    bits, registers, l2 = REQUIRED_CPUS[name]
    target = cpu_model(name, cores=4)
    assert (target.vector_bits, target.vector_registers, target.l2_bytes, target.cores) == (bits, registers, l2, 4)
    assert target.lanes() == bits // 32 and target.constants == shipped_constants(target.isa)
    if name != host.mcpu:  # an explicit CPU never gets the host's facts
        resolved = resolve_target({"kind": "llvm", "mcpu": name, "num-cores": 3})
        assert (resolved.mcpu, resolved.vector_bits, resolved.l2_bytes, resolved.cores) == (name, bits, l2, 3)
        assert resolve_target(name).l1_bytes == KNOWN_CPUS[name].l1_bytes


def test_registers_follow_the_isa_unless_given():
    assert CpuTarget("x", 256, 2, 32 * 1024, 512 * 1024).vector_registers == 16
    assert CpuTarget("x", 512, 2, 32 * 1024, 512 * 1024).vector_registers == 32
    assert CpuTarget("x", 256, 2, 32 * 1024, 512 * 1024, vector_registers=32).vector_registers == 32


def test_bad_targets_are_named():
    with pytest.raises(UnsupportedTargetError, match="not a known CPU.*znver4"):
        resolve_target("pentium-mmx")
    with pytest.raises(UnsupportedTargetError, match="only x86"):
        resolve_target({"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "neoverse-v1"})
    with pytest.raises(UnsupportedTargetError, match="vector_bits=128"):
        CpuTarget("x", 128, 2, 32 * 1024, 512 * 1024)
    with pytest.raises(UnsupportedTargetError, match="cores=0"):
        CpuTarget("x", 256, 0, 32 * 1024, 512 * 1024)


def test_host_descriptions_resolve_to_the_host(host):
    for description in (None, "host", "llvm", {"kind": "llvm"}, {"kind": "llvm", "mcpu": host.mcpu}):
        assert resolve_target(description) == host
    assert resolve_target(f"llvm -mcpu={host.mcpu} -num-cores=1") == host.with_cores(1)
    assert is_host(host)


def test_measuring_another_cpu_is_refused_by_name(host):
    other = cpu_model("znver3" if host.mcpu != "znver3" else "znver4", cores=2)
    require_host(host)
    with pytest.raises(UnsupportedTargetError, match=f"cannot measure for {other.mcpu}.*--no-measure"):
        require_host(other)


def test_synth_prints_another_cpus_program_without_measuring(host, capsys):
    from tvm_morello.cli import main

    other = "znver3" if host.vector_bits == 512 else "znver4"
    assert main(["synth", "--op", "dense", "--shape", "64x128x128", "--target", other, "--no-measure"]) == 0
    printed = capsys.readouterr().out
    assert f"for {other} (" in printed and "registers(out)" in printed
    assert main(["synth", "--op", "dense", "--shape", "64x128x128", "--target", other]) == 2
    assert f"cannot measure for {other}" in capsys.readouterr().err


def test_fit_recovers_constants_that_explain_the_times_exactly():
    rng = np.random.default_rng(0)
    truth = CostConstants.from_vector(rng.uniform(0.1, 10.0, len(CostConstants.names())))
    truth = CostConstants(**{**truth.as_dict(), "global_line": 3.0 * truth.l2_line})
    features = rng.uniform(0, 1000, (60, len(CostConstants.names())))
    seconds = features @ np.array(truth.as_vector()) * 1e-9
    fitted = fit_features(features, seconds, CostConstants(), prior_weight=1e-6)
    assert np.allclose(fitted.as_vector(), truth.as_vector(), rtol=1e-3)


def test_fit_never_makes_memory_lines_cheaper_than_twice_l2_lines():
    from tvm_morello.cost.fit import GLOBAL_OVER_L2

    rng = np.random.default_rng(1)
    truth = CostConstants(**{**CostConstants().as_dict(), "global_line": 1.0, "l2_line": 4.0})
    features = rng.uniform(0, 1000, (40, len(CostConstants.names())))
    fitted = fit_features(features, features @ np.array(truth.as_vector()) * 1e-9, CostConstants(), 1e-6)
    assert fitted.global_line >= GLOBAL_OVER_L2 * fitted.l2_line * (1 - 1e-9) and fitted.l2_line > 0


def _samples(count, seed, source="test"):
    rng = np.random.default_rng(seed)
    names = CostConstants.names()
    return [Sample(f"w{i % 3}", tuple(rng.uniform(0, 100, len(names))), float(rng.uniform(1e-6, 1e-3)), source)
            for i in range(count)]


def test_a_fit_older_than_a_constant_gets_it_derived_from_the_others():
    # calibrations stored before the dot form existed have no lane_sum or dot_fma
    old = {name: float(i + 1) for i, name in enumerate(CostConstants.names()) if name not in ("lane_sum", "dot_fma")}
    constants = CostConstants.from_dict(old)
    assert constants.lane_sum == pytest.approx(4 * old["vector_op"])
    assert constants.dot_fma == pytest.approx(old["fma_vector"] + old["vector_load"] / 8)
    assert CostConstants.from_dict(constants.as_dict()) == constants


def test_store_merges_samples_and_refits(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    first = refit("cpu-a", "avx2", _samples(10, 0), "calibrate")
    assert load_fit("cpu-a") == first and fit_path("cpu-a").is_relative_to(tmp_path)
    second = refit("cpu-a", "avx2", _samples(5, 1, "MorelloSearch") + list(first.samples[:2]), "MorelloSearch")
    assert len(second.samples) == 15  # two re-measured samples replace their old rows
    assert second.sources == ("calibrate", "MorelloSearch") and second.constants != first.constants
    assert load_fit("cpu-b") is None
    fit_path("cpu-b").write_text("{not json")
    assert load_fit("cpu-b") is None  # unreadable: ignored (with a warning), never fatal


def test_a_new_process_uses_the_stored_calibration_and_warns_without_one(tmp_path, host):
    script = "import json, tvm_morello; print(json.dumps(tvm_morello.detect_cpu().constants.as_dict()))"
    env = {**os.environ, CACHE_DIR_ENV: str(tmp_path)}
    plain = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert plain.stderr.count("tvm-morello calibrate") == 1
    assert CostConstants.from_dict(json.loads(plain.stdout)) == shipped_constants(host.isa)
    os.environ[CACHE_DIR_ENV], saved = str(tmp_path), os.environ[CACHE_DIR_ENV]
    try:
        fit = refit(host.identity, host.isa, _samples(12, 2), "calibrate")
    finally:
        os.environ[CACHE_DIR_ENV] = saved
    tuned = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert "calibrate" not in tuned.stderr
    assert CostConstants.from_dict(json.loads(tuned.stdout)) == fit.constants


def test_calibrate_stores_its_fit_after_every_round(host, monkeypatch):
    from tvm_morello import calibration
    from tvm_morello.spec.operators import dense

    monkeypatch.setattr(calibration, "WORKLOADS", (lambda: dense(8, 64, 64), lambda: dense(24, 128, 64)))
    rounds_stored = []
    monkeypatch.setattr(calibration, "refit", lambda *a, **k: rounds_stored.append(len(a[2])) or refit(*a, **k))
    fit, quality = calibration.calibrate_host(host, top_k=2, rounds=2, progress=lambda line: None)
    assert [q.workload for q in quality] == ["dense_8x64x64", "dense_24x128x64"]
    assert all(q.programs >= 2 and q.best_gflops > 0 and q.top1_slowdown_after >= 1.0 for q in quality)
    assert len(rounds_stored) == 2 and rounds_stored[0] <= rounds_stored[1]  # stored after each round, once each
    assert load_fit(host.identity) == fit and fit.sources == ("calibrate",)
    assert {s.workload for s in fit.samples} == {"dense_8x64x64", "dense_24x128x64"}
