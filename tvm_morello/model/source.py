"""A user's model as a Relax IRModule with its weights bound, and the ranges of its symbolic dimensions."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ..errors import InvalidShapeError, InvalidWeightsError, UnsupportedOperatorError
from ..spec.symbolic import VarRange


def load_model(model, params: Mapping[str, object] | None = None):
    """A Relax IRModule from an ONNX file path, an ``onnx.ModelProto`` or an IRModule.

    ONNX goes through ``relax.frontend.onnx.from_onnx`` with its initialisers as constants (the weights are the
    model's, packed once at compile time) and each ``dim_param`` a symbolic variable of that name. An IRModule's
    ``main`` gets ``params`` (weights by parameter name, e.g. from ``relax.frontend.nn``'s ``export_tvm``) bound
    as constants."""
    import tvm

    if isinstance(model, tvm.IRModule):
        names = [gv.name_hint for gv in model.get_global_vars()]
        if "main" not in names:
            example = sorted(names)[0] if names else "forward"
            raise UnsupportedOperatorError(
                f"the Relax module has no 'main' function to compile (its functions: {', '.join(sorted(names))}); "
                f"name the one to compile main, e.g. tvm.IRModule({{'main': mod[{example!r}].with_attr("
                "'global_symbol', 'main')})")
        return bind_weights(model, params) if params else model
    if params:
        raise InvalidWeightsError("params are for a Relax module: an ONNX model's weights are its initialisers")
    import onnx
    from tvm.relax.frontend.onnx import from_onnx

    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} does not exist")
        if path.suffix.lower() != ".onnx":
            raise UnsupportedOperatorError(f"model file {path}: expected an .onnx file (or pass a Relax IRModule)")
        model = onnx.load(str(path))
    if not isinstance(model, onnx.ModelProto):
        raise UnsupportedOperatorError(f"cannot compile a {type(model).__name__}: pass an ONNX file, an "
                                       "onnx.ModelProto or a Relax IRModule")
    try:
        return from_onnx(model, keep_params_in_input=False)
    except Exception as err:  # the frontend names the ONNX operator it has no converter for
        raise UnsupportedOperatorError(f"TVM's ONNX frontend cannot import the model: {err}") from err


def bind_weights(mod, params: Mapping[str, object]):
    """``mod`` with the parameters of ``main`` named in ``params`` bound to those arrays (constants)."""
    import numpy as np
    import tvm
    from tvm import relax

    main = mod["main"]
    declared = {p.name: p.ty for p in main.params}
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise InvalidWeightsError(f"params {unknown} are not parameters of main (its parameters: "
                                  f"{', '.join(declared)})")
    arrays = {}
    for name, value in params.items():
        array = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
        shape = declared[name].shape if isinstance(declared[name], relax.TensorType) else None
        wanted = [int(d) if isinstance(d, tvm.tirx.IntImm) else None for d in shape.values] if shape else None
        if wanted is None or None in wanted or list(array.shape) != wanted or str(array.dtype) != declared[name].dtype:
            raise InvalidWeightsError(f"param {name!r} is {array.dtype}{list(array.shape)}; main declares it "
                                      f"{declared[name].dtype}{wanted}")
        arrays[name] = tvm.runtime.tensor(array)
    return relax.transform.BindParams("main", arrays)(mod)


def static_parameters(func) -> list[str]:
    """The names of ``func``'s tensor parameters whose every dimension is static (weights left as inputs, when a
    model has them)."""
    from tvm import relax, tirx

    return [p.name for p in func.params if isinstance(p.ty, relax.TensorType) and p.ty.shape is not None
            and all(isinstance(d, tirx.IntImm) for d in p.ty.shape.values)]


def symbolic_dims(func) -> list[str]:
    """Names of the symbolic variables in ``func``'s parameter shapes, in order of first appearance."""
    from tvm import relax, tirx

    names: list[str] = []
    for param in func.params:
        info = param.ty
        if not isinstance(info, relax.TensorType) or info.shape is None:
            continue
        for dim in info.shape.values:
            for var in tirx.analysis.undefined_vars(dim):
                if var.name not in names:
                    names.append(var.name)
    return names


def model_ranges(func, ranges: Mapping[str, VarRange | tuple[int, int]] | None) -> dict[str, VarRange]:
    """The range of every symbolic dimension of ``func``: from ``ranges``, else from the function's
    ``tir_var_lower_bound`` / ``tir_var_upper_bound`` attributes (torch's ``Dim(min, max)``). Raises naming a
    dimension without a range or a range for a dimension the model does not have."""
    dims = symbolic_dims(func)
    given = {name: r if isinstance(r, VarRange) else VarRange(*r) for name, r in (ranges or {}).items()}
    unknown = sorted(set(given) - set(dims))
    if unknown:
        raise InvalidShapeError(f"range given for {unknown}, which the model does not have (its symbolic "
                                f"dimensions: {dims or 'none'})")
    attrs = func.attrs or {}
    lower = dict(attrs["tir_var_lower_bound"]) if "tir_var_lower_bound" in attrs else {}
    upper = dict(attrs["tir_var_upper_bound"]) if "tir_var_upper_bound" in attrs else {}
    out = {}
    for name in dims:
        if name in given:
            out[name] = given[name]
        elif name in upper:
            out[name] = VarRange(max(1, int(lower.get(name, 1))), int(upper[name]))
        else:
            raise InvalidShapeError(f"symbolic dimension {name!r} has no range: pass one (ranges={{{name!r}: (1, 128)}} "
                                    f"or --range {name}=1:128)")
    return out
