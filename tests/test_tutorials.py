"""Every tutorial runs as a newcomer would run it (its own process) and prints the results it promises."""
import re
import subprocess
import sys
from pathlib import Path

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"


def _run(name: str) -> str:
    done = subprocess.run([sys.executable, str(TUTORIALS / name)], capture_output=True, text=True)  # no time limit
    assert done.returncode == 0, f"{name} failed:\n{done.stderr[-3000:]}"
    return done.stdout


def _errors(out: str, pattern: str) -> list[float]:
    return [float(v) for v in re.findall(pattern, out, re.M)]


def test_swap_in_strategy():
    out = _run("01_swap_in_strategy.py")
    assert re.search(r"^correct; [\d.]+ GFLOP/s", out, re.M), out[-2000:]


def test_dynamic_dense():
    out = _run("02_dynamic_dense.py")
    errors = _errors(out, r"^\d+ max error (\S+)$")
    assert len(errors) == 4 and max(errors) < 1e-3, out[-2000:]
    assert "m=300 rejected: dense: shape outside the declared range (m in 1..256)" in out
    assert "tvm_morello imported: False" in out


def test_symbolic_tune_tir():
    out = _run("03_symbolic_tune_tir.py")
    errors = _errors(out, r"max \|error\| vs numpy (\S+)")
    assert len(errors) == 3 and max(errors) < 1e-3, out[-2000:]


def test_compile_onnx_model():
    out = _run("04_compile_onnx_model.py")
    checked = re.findall(r"^(\d+) (\d+) (?:max error vs ONNX Runtime (\S+)|output \(.*\))$", out, re.M)
    assert len(checked) == 3, out[-2000:]
    assert all(float(err) < 1e-3 for *_, err in checked if err), out[-2000:]
    assert "seq=65 rejected: seq=65 is outside the range 1..64 the model was compiled for" in out
    assert "tvm_morello imported: False" in out
