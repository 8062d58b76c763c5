"""Build functions that misbehave on request, for the FastBuilder tests (imported by its worker process).

A candidate asks for misbehaviour through an attribute of its ``main`` PrimFunc (see ``misbehave``).
"""
import ctypes
import os
import time

from tvm_morello.tune import build_module

SLEEP = "tvm_morello_test_sleep_s"  # sleep this long (releases the GIL), then build
HOLD_GIL = "tvm_morello_test_hold_gil_s"  # block this long in a native call that keeps the GIL
EXIT = "tvm_morello_test_exit_code"  # the worker process exits with this code, as if LLVM crashed


def misbehave(mod, attr: str, value: int):
    """``mod`` with its main function asking ``misbehaving_build`` for ``attr``."""
    return type(mod)({"main": mod["main"].with_attr(attr, value)})


def misbehaving_build(mod, target, params=None):
    attrs = mod["main"].attrs
    if attrs is not None and SLEEP in attrs:
        time.sleep(int(attrs[SLEEP]))
    if attrs is not None and HOLD_GIL in attrs:
        ctypes.PyDLL(None).sleep(int(attrs[HOLD_GIL]))  # PyDLL: the GIL stays held, the worker's timer is stuck
    if attrs is not None and EXIT in attrs:
        os._exit(int(attrs[EXIT]))
    return build_module(mod, target, params)
