"""A meta-schedule Builder that compiles candidates in-process, skipping the ~15 s tensor-intrinsic import."""
from __future__ import annotations

import os
import tempfile

import tvm
from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.builder import BuilderInput, BuilderResult, PyBuilder


def build_module(mod: tvm.IRModule, target: tvm.target.Target, _params=None) -> tvm.runtime.Module:
    """Compile a scheduled module for ``target``.

    Same passes as meta-schedule's ``default_build`` minus its ``import tvm.s_tir.tensor_intrin``, which
    registers CUDA/ARM intrinsics our CPU schedules never use and costs ~15 s per fresh worker. The
    signature matches ``LocalBuilder(f_build=...)``, for users who want builds in worker processes.
    """
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    return tvm.tirx.build(mod, target)


def export_module(rt_mod: tvm.runtime.Module) -> str:
    """Write a compiled module to a fresh temporary shared library and return its path.

    A .so loads locally and through RPC alike; meta-schedule's RemoveBuildArtifact deletes it after the run.
    """
    path = os.path.join(tempfile.mkdtemp(prefix="tvm_morello_build_"), "candidate.so")
    rt_mod.export_library(path)
    return path


@derived_object
class FastBuilder(PyBuilder):
    """Builds every candidate in the tuning process, one after another.

    Measured here (8 tiled 256^3 matmuls): ~0.7 s per batch, against ~3 s for
    ``LocalBuilder(f_build=build_module)`` (which starts a new worker pool per batch) and ~28 s for the
    default ``LocalBuilder``. A failing build becomes a ``BuilderResult`` with the error message; there is
    no timeout and no isolation from a crashing compiler (use LocalBuilder with ``build_module`` for that).
    """

    def build(self, build_inputs: list[BuilderInput]) -> list[BuilderResult]:
        return [_build_one(build_input) for build_input in build_inputs]


def _build_one(build_input: BuilderInput) -> BuilderResult:
    try:
        artifact = export_module(build_module(build_input.mod, build_input.target, build_input.params))
    except Exception as err:  # any compiler failure is the candidate's fault, not the tune's
        return BuilderResult(None, f"tvm_morello.FastBuilder: {type(err).__name__}: {err}")
    return BuilderResult(artifact, None)


def fast_builder() -> FastBuilder:
    """The builder our entry points use by default."""
    return FastBuilder()
