"""Exceptions raised by tvm-morello; each message names the offending input and what is supported."""


class MorelloError(Exception):
    """Base class of every error tvm-morello raises on purpose."""


class UnsupportedOperatorError(MorelloError):
    """The PrimFunc is not an operator tvm-morello can express as a spec (e.g. layer_norm)."""


class InvalidShapeError(MorelloError, ValueError):
    """A shape is empty, has a zero or negative dimension, or lies outside a declared range."""


class InvalidWeightsError(MorelloError, ValueError):
    """Weights passed for a Relax module that are not parameters of its ``main``, or not of their shape."""


class UnsupportedDtypeError(MorelloError, TypeError):
    """An operand dtype other than float32."""


class UnsupportedTargetError(MorelloError, ValueError):
    """A target other than LLVM on x86 (or an unparsable target description)."""


class VerificationError(MorelloError):
    """A compiled kernel disagreed with numpy; nothing was written."""


class UncalibratedWarning(UserWarning):
    """The host CPU has no calibration of its own yet: the cost model uses its ISA's shipped constants."""
