"""Whole models: an ONNX or Relax model with symbolic dimensions compiled into one tuned, verified library."""
from .compile import CompiledModel, compile_model
from .source import load_model, model_ranges

__all__ = ["CompiledModel", "compile_model", "load_model", "model_ranges"]
