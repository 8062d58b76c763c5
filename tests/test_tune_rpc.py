"""Distributed measurement: a tune through ms.runner.RPCRunner, an RPC tracker and two servers on loopback."""
import random
import time

import tvm_morello  # noqa: F401  (sets TVM_NUM_THREADS before tvm loads)

import pytest
from tvm.rpc.server import Server
from tvm.rpc.tracker import Tracker
from tvm.s_tir import meta_schedule as ms

from tvm_morello.testing import assert_best_matmul_correct, host_tvm_target, matmul, record_failed, task_records
from tvm_morello.tune import tune

TARGET = host_tvm_target()

KEY = "tvm-morello-test"


@pytest.fixture
def rpc_config():
    """A tracker and two servers on 127.0.0.1, both registered with the tracker, killed at the end."""
    base = random.randrange(20000, 40000, 100)
    tracker = Tracker("127.0.0.1", port=base, port_end=base + 50, silent=True)
    servers = [
        Server(
            "127.0.0.1",
            port=base + 50,
            port_end=base + 100,
            tracker_addr=("127.0.0.1", tracker.port),
            key=KEY,
            silent=True,
        )
        for _ in range(2)
    ]
    config = ms.runner.RPCConfig(
        tracker_host="127.0.0.1", tracker_port=tracker.port, tracker_key=KEY, session_timeout_sec=120
    )
    try:
        _wait_for_servers(config, 2, [tracker, *servers])
        yield config
    finally:
        for server in servers:
            server.terminate()
        tracker.terminate()


def _wait_for_servers(config, count, processes):
    """Poll until ``count`` servers registered; fail if the tracker or a server process died first.

    No time limit of our own: however slow the machine, a live server registers eventually.
    """
    while (registered := config.count_num_servers(allow_missing=True)) < count:
        dead = [p for p in processes if not p.proc.is_alive()]
        assert not dead, f"{len(dead)} RPC process(es) died with {registered} of {count} servers registered"
        time.sleep(0.2)


def test_tune_measures_through_rpc_tracker_and_two_servers(tmp_path, rpc_config):
    runner = ms.runner.RPCRunner(rpc_config=rpc_config, max_workers=2)
    func = matmul()
    database = tune(
        func, TARGET, str(tmp_path), max_trials=4, num_trials_per_iter=4, runner=runner, num_tuning_cores=1
    )
    records = task_records(database, func)
    assert len(records) == 4
    assert not any(record_failed(r) for r in records), "an RPC measurement failed"
    assert_best_matmul_correct(database, func)
