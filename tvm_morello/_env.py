"""Set TVM's thread count before TVM is imported: TVM uses one thread here unless told otherwise."""
import os
import sys
import warnings


def configure_threads() -> None:
    """Default TVM_NUM_THREADS to the number of usable cores, and warn if TVM was imported first."""
    from .target.host import usable_cores

    if "TVM_NUM_THREADS" in os.environ:
        return
    os.environ["TVM_NUM_THREADS"] = str(usable_cores())
    if "tvm" in sys.modules:
        warnings.warn(
            "tvm was imported before tvm_morello; its runtime may use a single thread. "
            "Import tvm_morello first or set TVM_NUM_THREADS.",
            stacklevel=3,
        )
