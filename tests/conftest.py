"""Shared fixtures: import tvm_morello first so TVM gets its thread count, and the host CPU."""
import pytest

import tvm_morello  # noqa: F401  (sets TVM_NUM_THREADS before tvm is imported)


@pytest.fixture(scope="session")
def cpu():
    return tvm_morello.detect_cpu()
