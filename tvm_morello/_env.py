"""Set TVM's thread pool up before TVM is imported: TVM uses one thread here unless told otherwise, and pins
its workers to cores unless told not to."""
import os
import sys
import warnings

# TVM pins its pool's workers to cores and leaves the calling thread where the OS put it: on a 2-core VM about
# half the processes then ran small parallel calls 20-45% slower for their whole life (a Llama layer, batch 1,
# T = 16: 0.26-0.30 ms against 0.23 ms; 11 processes each way: 5 slow pinned, none unpinned)
THREAD_SETTINGS = {"TVM_BIND_THREADS": "0"}


def configure_threads() -> None:
    """Default TVM_NUM_THREADS to the number of usable cores and TVM_BIND_THREADS to 0, and warn if TVM was
    imported first."""
    from .target.host import usable_cores

    for name, value in THREAD_SETTINGS.items():
        os.environ.setdefault(name, value)
    if "TVM_NUM_THREADS" in os.environ:
        return
    os.environ["TVM_NUM_THREADS"] = str(usable_cores())
    if "tvm" in sys.modules:
        warnings.warn(
            "tvm was imported before tvm_morello; its runtime may use a single thread. "
            "Import tvm_morello first or set TVM_NUM_THREADS.",
            stacklevel=3,
        )
