"""The compiled ``main`` checks its inputs' dimensions against the ranges it was compiled for, so a call outside
them raises an AssertionError naming the dimension and its range (the kernels' own checks only see m)."""
from __future__ import annotations

from typing import Mapping

from ..spec.symbolic import VarRange


def with_range_checks(mod, ranges: Mapping[str, VarRange]):
    """``mod`` whose ``main`` asserts every dimension in ``ranges`` and then calls the model (``main_inner``)."""
    from tvm import relax, tirx

    main = mod["main"]
    builder = relax.BlockBuilder(_without_main(mod))
    params = [relax.Var(p.name, p.ty) for p in main.params]
    bounds = {name: rng.hi for name, rng in ranges.items()}
    # the bounds let the VM plan the model's intermediate buffers once, at their largest, instead of per call
    inner = builder.add_func(main.without_attr("global_symbol").with_attr("tir_var_upper_bound", bounds),
                             "main_inner")
    dims = {var.name: var for p in params for dim in p.ty.shape.values for var in tirx.analysis.undefined_vars(dim)}
    attrs = {key: value for key, value in (main.attrs or {}).items() if key != "global_symbol"}
    with builder.function("main", params, attrs):
        for name, rng in ranges.items():
            var = dims[name]
            builder.emit(relax.op.assert_op(
                relax.prim_value(tirx.all(var >= rng.lo, var <= rng.hi)), format_args=[relax.prim_value(var)],
                format=f"{name}={{}} is outside the range {rng.lo}..{rng.hi} the model was compiled for"))
        builder.emit_func_output(builder.emit(relax.Call(inner, params)))
    return builder.get()


def _without_main(mod):
    import tvm

    return tvm.IRModule({gv: func for gv, func in mod.functions_items() if gv.name_hint != "main"})
