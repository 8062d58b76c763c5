"""Where a compiled model's time goes at one input shape: its kernel calls, captured once through the VM's
instrument hook and replayed in order, each timed alone (its fastest of the repeats), beside the whole call.

A profile taken during the call is perturbed by the hook itself (a Python callback before and after each of
~190 calls per BERT layer doubled the layer's time); replaying the captured calls keeps the order, and with it
which weights are in cache, without the hook. The VM's own work (shapes, allocation) is the gap between the sum
and the whole call. Measures on this machine: run it alone.

    python scripts/profile_model.py bert_1.so --input 1x16x768
"""
from __future__ import annotations

import argparse
import time
from collections import defaultdict

VM_BUILTINS = ("vm.builtin.", "relax.run.", "relax.vm.")


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a shape such as 1x16x768") from None
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every extent must be a positive integer")
    return shape


def captured_calls(library, vm, inputs) -> list[tuple[str, object, list]]:
    """(name, function, arguments) of every compiled kernel ``main`` calls on ``inputs``, in call order."""
    calls: list[tuple[str, list]] = []

    def instrument(func, symbol, before_run, ret_value, *args):
        if before_run:
            calls.append((str(symbol), list(args)))
        return 0  # VMInstrumentReturnKind.NO_OP

    vm.set_instrument(instrument)
    vm["main"](*inputs)
    vm.set_instrument(None)
    kernels = library.imports[0] if library.imports else library
    found = []
    for name, args in calls:
        if name.startswith(VM_BUILTINS):
            continue
        try:
            found.append((name, kernels.get_function(name), args))
        except AttributeError:  # a Relax function of the VM itself (e.g. main's inner body), not a kernel
            continue
    return found


def best_seconds(call, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", help="a model library written by `tvm-morello compile` (or any Relax VM .so)")
    parser.add_argument("--input", type=parse_shape, action="append", required=True,
                        help="shape of one float32 input of main, e.g. 1x16x768 (once per input, in order)")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    import tvm_morello  # noqa: F401  (before tvm: sets its thread count)

    import numpy as np
    import tvm
    from tvm import relax

    library = tvm.runtime.load_module(args.library)
    vm = relax.VirtualMachine(library, tvm.cpu())
    rng = np.random.default_rng(0)
    inputs = [tvm.runtime.tensor(rng.uniform(-1, 1, shape).astype("float32")) for shape in args.input]
    for _ in range(3):
        vm["main"](*inputs)
    calls = captured_calls(library, vm, inputs)
    whole = best_seconds(lambda: vm["main"](*inputs), args.repeats)

    per_call = [float("inf")] * len(calls)
    for _ in range(args.repeats):  # the whole sequence in turn, so each call finds the cache its model call leaves
        for i, (_, func, call_args) in enumerate(calls):
            start = time.perf_counter()
            func(*call_args)
            per_call[i] = min(per_call[i], time.perf_counter() - start)

    totals: dict[str, list[float]] = defaultdict(list)
    print(f"{'us':>10}  kernel (argument shapes)")
    for (name, _, call_args), seconds in zip(calls, per_call):
        shapes = ", ".join("x".join(map(str, a.shape)) for a in call_args if hasattr(a, "shape"))
        print(f"{seconds * 1e6:10.1f}  {name} ({shapes})")
        totals[name].append(seconds)
    summed = sum(per_call)
    print("\nper kernel, slowest first:")
    for name, times in sorted(totals.items(), key=lambda kv: -sum(kv[1])):
        print(f"{sum(times) * 1e6:10.1f} us  {100 * sum(times) / summed:5.1f}%  x{len(times)}  {name}")
    print(f"\n{len(calls)} kernel calls: {summed * 1e6:.1f} us summed; the whole call {whole * 1e6:.1f} us "
          f"(the VM's own work and timing noise: {(whole - summed) * 1e6:+.1f} us)")


if __name__ == "__main__":
    main()
