"""Cost models: Morello's affine model (constants calibrated on this machine) and learned models."""
from .affine import lines_touched, move_cost, parallel_loop_cost, serial_loop_cost
from .constants import CostConstants

__all__ = ["CostConstants", "lines_touched", "move_cost", "parallel_loop_cost", "serial_loop_cost"]
