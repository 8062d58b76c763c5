"""Cost models: Morello's affine model (constants calibrated on this machine) and learned models."""
from .affine import lines_touched, move_cost, parallel_loop_cost, serial_loop_cost
from .calibrate import fit_constants, program_cost, program_features
from .constants import CostConstants

__all__ = ["CostConstants", "fit_constants", "program_cost", "program_features", "lines_touched", "move_cost", "parallel_loop_cost", "serial_loop_cost"]
