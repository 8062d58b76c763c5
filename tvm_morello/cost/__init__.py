"""Cost models: Morello's affine model, its constants (shipped per ISA, fitted per CPU) and their fitting."""
from .affine import lines_touched, move_cost, parallel_loop_cost, serial_loop_cost
from .constants import CostConstants, isa_of, shipped_constants
from .fit import fit_constants, fit_features, program_cost, program_features

__all__ = [
    "CostConstants", "fit_constants", "fit_features", "isa_of", "lines_touched", "move_cost", "parallel_loop_cost",
    "program_cost", "program_features", "serial_loop_cost", "shipped_constants",
]
