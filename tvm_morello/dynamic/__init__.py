"""DietCode-style dynamic shapes: shape-generic micro-kernels, joint tuning, a compiled decision-tree dispatcher."""
from .dispatch import DispatchTree
from .measure import KernelMeasurer, Measurement
from .microkernels import MicroKernel, candidate_microkernels
from .plan import OperatorPlan
from .shapes import DynamicWorkload, VarRange, batch_matmul, bert_workloads, dense, from_prim_func
from .strategy_route import SymbolicCandidate, build_library_from_database, propose_symbolic_candidates
from .tuner import TuningConfig, summary_table, tune_and_export, tune_dynamic

__all__ = [
    "DispatchTree", "DynamicWorkload", "KernelMeasurer", "Measurement", "MicroKernel", "OperatorPlan",
    "SymbolicCandidate", "TuningConfig", "VarRange", "batch_matmul", "bert_workloads", "build_library_from_database",
    "candidate_microkernels", "dense", "from_prim_func", "propose_symbolic_candidates", "summary_table",
    "tune_and_export", "tune_dynamic",
]
