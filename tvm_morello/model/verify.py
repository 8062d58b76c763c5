"""The compiled model against reference builds of the same model, at both ends of every range and at random points
in between: ONNX Runtime at every point when the model came from ONNX and it is installed, TVM's untuned build
(minutes per call on a large model at the high end) at the low end only then, else at every point."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from ..errors import VerificationError
from ..spec.symbolic import VarRange


@dataclass(frozen=True)
class ModelVerification:
    """The assignments of the model's dimensions checked and the largest error seen against the reference."""

    points: tuple[dict, ...]
    max_abs_error: float

    def to_json(self) -> dict:
        return {"points": list(self.points), "max_abs_error": self.max_abs_error}


def check_points(ranges: Mapping[str, VarRange], random_points: int = 2, seed: int = 0) -> list[dict[str, int]]:
    """Every dimension at its low end, at its high end, and ``random_points`` random assignments."""
    rng = np.random.default_rng(seed)
    points = [{name: r.lo for name, r in ranges.items()}, {name: r.hi for name, r in ranges.items()}]
    points += [{name: int(rng.integers(r.lo, r.hi + 1)) for name, r in ranges.items()} for _ in range(random_points)]
    unique = []
    for point in points:
        if point not in unique:
            unique.append(point)
    return unique


def input_arrays(func, env: Mapping[str, int], seed: int = 0) -> list[np.ndarray]:
    """Random inputs of ``func``'s parameters with its dimensions set by ``env``: floats in [-1, 1], integers and
    booleans 0 or 1 (a valid token id, token type and attention mask alike; a wider range could index past an
    embedding table, and zeros would make every token the same)."""
    from tvm import tirx

    rng = np.random.default_rng(seed)
    arrays = []
    for param in func.params:
        info = param.ty
        shape = [int(d) if isinstance(d, tirx.IntImm) else int(env[d.name]) for d in info.shape.values]
        if "float" in str(info.dtype):
            arrays.append(rng.uniform(-1, 1, shape).astype(str(info.dtype)))
        else:
            arrays.append(rng.integers(0, 2, shape).astype(str(info.dtype)))
    return arrays


def outputs_of(result) -> list[np.ndarray]:
    """A VM result (a tensor or a tuple of them) as numpy arrays."""
    if isinstance(result, (list, tuple)) or type(result).__name__ == "Array":
        return [np.asarray(r.numpy()) for r in result]
    return [result.numpy()]


def verify_model(run: Callable, references: Sequence[tuple[str, Callable, Sequence[dict]]], func, *,
                 atol: float = 1e-3, rtol: float = 1e-3,
                 explain: Callable[[Sequence[np.ndarray]], str] | None = None) -> ModelVerification:
    """Run ``run`` and each reference (name, numpy inputs -> list of numpy outputs, the points it checks) on
    random inputs; raises VerificationError naming the reference, the point and the output on a mismatch, and what
    ``explain`` says of the inputs that showed it (which part of the model differs)."""
    checked, worst = [], 0.0
    for name, reference, points in references:
        for i, env in enumerate(points):
            arrays = input_arrays(func, env, seed=i)
            got, want = run(arrays), reference(arrays)
            if len(got) != len(want):
                raise VerificationError(f"at {env}: the compiled model returned {len(got)} outputs, {name} {len(want)}")
            for index, (g, w) in enumerate(zip(got, want)):
                if g.shape != w.shape or not np.allclose(g, w, atol=atol, rtol=rtol):
                    error = float(np.max(np.abs(g - w))) if g.shape == w.shape else float("inf")
                    where = f"; {_explained(explain, arrays)}" if explain is not None else ""
                    raise VerificationError(f"at {env}: output {index} differs from {name} (max abs error {error:.3g}, "
                                            f"shapes {g.shape} / {w.shape}){where}; nothing was written")
                worst = max(worst, float(np.max(np.abs(g - w))) if g.size else 0.0)
            checked.append({"reference": name, **env})
    return ModelVerification(tuple(checked), worst)


def _explained(explain: Callable, arrays) -> str:
    """What ``explain`` says, or why it could not: the mismatch is reported either way."""
    try:
        return explain(arrays)
    except Exception as err:  # noqa: BLE001 - never hide the mismatch behind the explanation's own failure
        return f"locating the difference failed ({type(err).__name__}: {err})"


def onnx_runtime_runner(model_path) -> Callable | None:
    """A callable running the ONNX model in ONNX Runtime (CPU), or None when onnxruntime is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return lambda arrays: [np.asarray(o) for o in session.run(None, dict(zip(names, arrays)))]


def vm_runner(executable) -> Callable[[Sequence[np.ndarray]], list[np.ndarray]]:
    """A callable running ``executable``'s ``main`` on numpy inputs."""
    import tvm
    from tvm import relax

    vm = relax.VirtualMachine(executable, tvm.cpu())
    return lambda arrays: outputs_of(vm["main"](*[tvm.runtime.tensor(a) for a in arrays]))
