"""Which tuned matmul of a compiled model is wrong: every dispatcher call of one run, recomputed with numpy from
the inputs it was given, and its packed weight compared with the model's weights. Run only after a mismatch, so
that the error names the call rather than only the model's output."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..codegen.panels import unpack_panels_array
from ..dynamic.plan import OperatorPlan, dispatcher_rank
from ..spec.epilogue import Epilogue


def epilogue_numpy(epilogue: Epilogue, out: np.ndarray, vectors: Sequence[np.ndarray],
                   tensors: Sequence[np.ndarray]) -> np.ndarray:
    """The epilogue applied to a matmul's output with numpy."""
    from scipy.special import erf, expit

    funcs = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.divide, "erf": erf,
             "tanh": np.tanh, "exp": np.exp, "sigmoid": expit, "relu": lambda x: np.maximum(x, 0),
             "gelu": lambda x: x * (1 + erf(x / np.sqrt(2))) / 2, "silu": lambda x: x * expit(x),
             "gelu_tanh": lambda x: x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))) / 2}
    results: list[np.ndarray] = []

    def value(arg):
        if arg.kind == "step":
            return out if arg.index < 0 else results[arg.index]
        if arg.kind == "scalar":
            return np.float32(arg.value)
        return (vectors if arg.kind == "vector" else tensors)[arg.index]

    for step in epilogue.steps:
        results.append(funcs[step.op](*(value(arg) for arg in step.args)).astype(np.float32))
    return results[-1]


def locate_mismatch(executable, inputs: Sequence[np.ndarray], plans: Sequence[OperatorPlan],
                    epilogues: Mapping[str, Sequence[Epilogue]], weights: Sequence[np.ndarray], *,
                    atol: float = 1e-3, rtol: float = 1e-3) -> str:
    """A sentence naming the first dispatcher call (in execution order) of ``executable``'s ``main`` on ``inputs``
    that differs from numpy on its own inputs, or whose packed weight is none of ``weights`` (the model's dense
    weights, as [k, n]); or saying that every one matched."""
    import tvm
    from tvm import relax

    called = {plan.dispatcher_for(e): (plan, e) for plan in plans
              for e in (None, *epilogues.get(plan.workload.name, ()))}
    calls: list[tuple[str, list[np.ndarray]]] = []

    def instrument(func, symbol, before_run, ret_value, *args):
        name, _ = dispatcher_rank(str(symbol))  # a dispatcher of any activation rank
        if not before_run and name in called:
            calls.append((name, [arg.numpy() for arg in args]))
        return 0  # VMInstrumentReturnKind.NO_OP

    vm = relax.VirtualMachine(executable, tvm.cpu())
    vm.set_instrument(instrument)
    vm["main"](*[tvm.runtime.tensor(x) for x in inputs])
    shapes = {w.shape for w in weights}
    for index, (symbol, args) in enumerate(calls):
        plan, epilogue = called[symbol]
        what = f"matmul call {index + 1} of {len(calls)} ({plan.workload.name}" + (
            f" with epilogue {epilogue.ops})" if epilogue else ")")
        a, b, *extra, out = args
        wl = plan.workload
        if wl.constant_b:  # leading dimensions merged into m, as the kernels read them
            a, out = a.reshape(-1, a.shape[-1]), out.reshape(-1, out.shape[-1])
            extra = [x.reshape(out.shape) if x.ndim > 1 else x for x in extra]
            weight = unpack_panels_array(b, wl.n)
            if weight.shape in shapes and not any(np.array_equal(weight, w) for w in weights if w.shape == weight.shape):
                return f"{what}: its packed weight is none of the model's weights"
            b = weight.T if wl.transpose_b else weight  # as the user holds it
        want = wl.reference(a, b)
        if epilogue is not None:
            vectors, tensors = extra[:epilogue.vectors], extra[epilogue.vectors:]
            want = epilogue_numpy(epilogue, want, vectors, tensors)
        if not np.allclose(out, want, atol=atol, rtol=rtol):
            return f"{what} differs from numpy on its own inputs (max abs error {np.max(np.abs(out - want)):.3g})"
    return f"all {len(calls)} matmul calls match numpy on their own inputs: the difference is in the other operators"
