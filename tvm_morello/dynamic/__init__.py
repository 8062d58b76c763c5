"""DietCode-style planning for dynamic shapes: micro-kernel candidates, the throughput model, set cover, the
decision-tree dispatcher, and the joint tuning that measures and plans."""
from ..codegen.microkernel import MicroKernel
from ..measure.kernels import KernelMeasurer, Measurement
from ..spec.recognize import from_prim_func
from ..spec.symbolic import DynamicWorkload, VarRange, batch_matmul, bert_workloads, dense
from .candidates import candidate_microkernels
from .config import TuningConfig
from .dispatch import DispatchTree
from .plan import OperatorPlan
from .summary import summary_table
from .tuner import tune_dynamic

__all__ = [
    "DispatchTree", "DynamicWorkload", "KernelMeasurer", "Measurement", "MicroKernel", "OperatorPlan",
    "TuningConfig", "VarRange", "batch_matmul", "bert_workloads", "candidate_microkernels", "dense",
    "from_prim_func", "summary_table", "tune_dynamic",
]
