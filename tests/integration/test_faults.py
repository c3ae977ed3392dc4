"""Faults on the running local cluster: `cluster up` brings back just what died.

These stop real components of the shared cluster, so they run only when asked
(PROBELAB_FAULTS=1) and alone (the project's machines take the cluster lock exclusively
for this file). Each test leaves every component running again, and checks that the
healthy ones were never restarted. Its first run found an idempotent `up` restarting a
healthy kube-proxy (fixed: configs are written only when they change).
"""

import os
import signal

import pytest

from probelab.clusters.local.cluster import COMPONENTS, LocalCluster
from probelab.clusters.local.processes import Supervisor

pytestmark = pytest.mark.cluster


@pytest.fixture
def local() -> LocalCluster:
    if os.environ.get("PROBELAB_FAULTS") != "1":
        pytest.skip("stops cluster components: set PROBELAB_FAULTS=1 and hold the lock alone")
    cluster = LocalCluster()
    if not cluster.is_up():
        pytest.skip("needs the local cluster up (`probelab cluster up`)")
    return cluster


def _pids(local: LocalCluster) -> dict[str, int | None]:
    return {status.name: status.pid for status in local.status()}


def _terminate(local: LocalCluster, name: str) -> int:
    record = local.supervisor.record(name)
    assert record is not None, f"{name} is not running"
    os.kill(record.pid, signal.SIGTERM)
    return record.pid


@pytest.mark.parametrize("name", ["kube-scheduler", "coredns"])
def test_up_restarts_just_the_dead_component(local: LocalCluster, name: str) -> None:
    before = _pids(local)
    pid = _terminate(local, name)
    record = local.supervisor.record(name)
    if record is not None:  # gone, as a crash would leave it (a process exit cannot be watched)
        assert Supervisor._wait_gone(record, 30.0), f"{name} ignored SIGTERM"
    local.up()
    after = _pids(local)
    assert after[name] is not None and after[name] != pid
    assert {n: p for n, p in after.items() if n != name} == {
        n: p for n, p in before.items() if n != name
    }
    assert local.is_up()


def test_up_waits_for_a_dying_api_server_and_restarts_only_it(local: LocalCluster) -> None:
    """The issue's case: the API server SIGTERM'd and `up` run while it still shuts down."""
    before = _pids(local)
    pid = _terminate(local, "kube-apiserver")
    local.up()
    after = _pids(local)
    assert after["kube-apiserver"] not in (None, pid)
    others = [n for n in COMPONENTS if n != "kube-apiserver"]
    assert {n: after[n] for n in others} == {n: before[n] for n in others}
    assert local.is_up()
