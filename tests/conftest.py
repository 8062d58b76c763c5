"""Shared fixtures: a private temporary directory and calibration cache, tvm_morello before tvm (threads), named
targets and the host.

Search, spec, rewrite and kernel-choice tests take ``cpu``, which runs them once per named target (an AVX2 and
an AVX-512 CPU), whatever this machine is; tests that build and run code take ``host``.
"""
import atexit
import os
import shutil
import tempfile

import pytest

_TMP = tempfile.mkdtemp(prefix="tvm_morello_tests_")
os.environ["TMPDIR"] = _TMP  # every temporary file of the session (builds a test drives without meta-schedule's
tempfile.tempdir = None  # clean-up, work dirs; subprocesses inherit it) goes here and is removed at exit
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)

_CACHE = tempfile.mkdtemp(prefix="tvm_morello_test_cache_")
os.environ["TVM_MORELLO_CACHE_DIR"] = _CACHE  # before tvm_morello reads it; subprocesses inherit it
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)

import tvm_morello  # noqa: E402  (sets TVM_NUM_THREADS before tvm is imported)
from tvm_morello.testing import NAMED_TARGETS, collect_handoff_log  # noqa: E402


@pytest.fixture(autouse=True)
def private_calibration_cache(tmp_path_factory, monkeypatch):
    """Each test (and every process it starts) stores calibrations in a directory of its own, so a tune driven
    with made-up timings never feeds another test's cost constants."""
    monkeypatch.setenv("TVM_MORELLO_CACHE_DIR", str(tmp_path_factory.mktemp("calibration")))


@pytest.fixture(scope="session", params=sorted(NAMED_TARGETS))
def cpu(request):
    """A named CPU (never the host): the test runs once for each ISA."""
    return NAMED_TARGETS[request.param]


@pytest.fixture(scope="session")
def host():
    """This machine, for tests that build and run kernels."""
    return tvm_morello.detect_cpu()


@pytest.fixture
def handoff_log():
    """Records of tvm_morello.tune saying a task went to EvolutionarySearch."""
    with collect_handoff_log() as records:
        yield records
