"""A user's model as a Relax IRModule with its weights bound, and the ranges of its symbolic dimensions."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ..errors import InvalidShapeError, UnsupportedOperatorError
from ..spec.symbolic import VarRange


def load_model(model):
    """A Relax IRModule from an ONNX file path, an ``onnx.ModelProto`` or an IRModule (returned as is).

    ONNX goes through ``relax.frontend.onnx.from_onnx`` with its initialisers as constants (the weights are the
    model's, packed once at compile time) and each ``dim_param`` a symbolic variable of that name."""
    import tvm

    if isinstance(model, tvm.IRModule):
        if not any(gv.name_hint == "main" for gv in model.get_global_vars()):
            raise UnsupportedOperatorError("the Relax module has no 'main' function to compile")
        return model
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
