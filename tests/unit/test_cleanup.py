"""Cleanup that always finishes: every step runs, failures come back together.

`LocalCluster.down()` and the plugin's namespace teardown are driven with steps that fail
(as a 404 on a pod that already went, or `iptables -X` refusing, would) and checked to run
every later step anyway.
"""

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from probelab.cleanup import Cleanup, CleanupError
from probelab.clusters.local import cluster as local_cluster
from probelab.clusters.local import preflight
from probelab.clusters.local.cluster import COMPONENTS, LocalCluster
from probelab.clusters.local.components import Component
from probelab.clusters.local.config import LocalClusterConfig
from probelab.clusters.local.registry_server import LocalRegistryServer
from probelab.lab import Scenario
from probelab.plugin import LabRun
from probelab.secrets import SECRETS


def test_every_step_runs_and_failures_are_raised_together() -> None:
    ran: list[str] = []
    cleanup = Cleanup("tearing down")

    def fail(message: str) -> None:
        ran.append(message)
        raise RuntimeError(message)

    cleanup.run("first", lambda: fail("boom"))
    cleanup.run("second", lambda: ran.append("second"))
    cleanup.run("third", lambda: fail("bang"))
    with pytest.raises(CleanupError) as caught:
        cleanup.check()
    assert ran == ["boom", "second", "bang"]
    assert caught.value.failures == ["first: boom", "third: bang"]
    assert caught.value.exit_code == 1
    assert "2 step(s) failed" in str(caught.value)


def test_no_failure_raises_nothing() -> None:
    cleanup = Cleanup("tearing down")
    cleanup.run("fine", lambda: None)
    cleanup.check()


def test_failures_are_masked() -> None:
    SECRETS.register("cleanup-secret-0123")
    cleanup = Cleanup("tearing down")

    def leak() -> None:
        raise RuntimeError("login with cleanup-secret-0123 refused")

    cleanup.run("login", leak)
    with pytest.raises(CleanupError) as caught:
        cleanup.check()
    assert "cleanup-secret-0123" not in str(caught.value)


@pytest.fixture
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalCluster:
    """A LocalCluster on a scratch state directory whose host-touching steps are recorded.

    The registry trust lives under /etc, shared with any real cluster here: never touch it.
    """
    calls: list[str] = []
    cluster = LocalCluster(LocalClusterConfig(home=tmp_path / "state"))
    monkeypatch.setattr(LocalRegistryServer, "untrust", lambda self: calls.append("untrust"))
    cluster.calls = calls  # type: ignore[attr-defined]
    return cluster


def test_down_runs_every_step_when_earlier_ones_fail(
    local: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = local.calls  # type: ignore[attr-defined]

    def stop(name: str, **_: Any) -> bool:
        calls.append(f"stop {name}")
        if name == "kubelet":
            raise ProcessLookupError("no such process")
        return True

    def drain() -> None:
        calls.append("drain")
        raise client.ApiException(status=404, reason="Not Found")

    def network_down() -> None:
        calls.append("network")
        raise RuntimeError("`iptables -w -X PROBELAB-FORWARD` failed: chain in use")

    monkeypatch.setattr(local.supervisor, "stop", stop)
    monkeypatch.setattr(local, "_drain_pods", drain)
    monkeypatch.setattr(local.network, "down", network_down)
    monkeypatch.setattr(local_cluster, "unmount_below", lambda root: calls.append("unmount"))

    with pytest.raises(CleanupError) as caught:
        local.down(quiet=True)

    stops = [f"stop {name}" for name in reversed(COMPONENTS)]
    assert calls == ["drain", *stops, "network", "untrust", "unmount"]
    failures = caught.value.failures
    assert len(failures) == 3
    assert failures[0].startswith("deleting the pods")
    assert failures[1] == "stopping kubelet: no such process"
    assert "chain in use" in failures[2]


class GonePods:
    """A CoreV1Api whose pod deletions answer with `status`."""

    def __init__(self, status: int) -> None:
        self.status = status

    def delete_namespaced_pod(self, name: str, namespace: str, **_: Any) -> None:
        raise client.ApiException(status=self.status, reason="x")


def test_a_pod_already_gone_is_no_failure_but_other_errors_are() -> None:
    local_cluster._delete_pod(GonePods(404), "p", "ns")  # type: ignore[arg-type]
    with pytest.raises(client.ApiException):
        local_cluster._delete_pod(GonePods(500), "p", "ns")  # type: ignore[arg-type]


def test_up_failure_keeps_the_first_error(
    local: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_up(*_: object) -> None:
        raise ValueError("etcd did not become ready")

    def failing_down(*, quiet: bool = False) -> None:
        raise CleanupError("stopping the local cluster", ["stopping etcd: denied"])

    monkeypatch.setattr(local, "is_up", lambda: False)
    monkeypatch.setattr(local, "build", lambda request=None: (None, None))
    monkeypatch.setattr(preflight, "check", lambda config, supervisor: None)
    monkeypatch.setattr(local, "_up", failing_up)
    monkeypatch.setattr(local, "down", failing_down)
    with pytest.raises(ValueError, match="etcd did not become ready"):
        local.up()


class FakeLab:
    """What LabRun.close uses of a Lab: stopping its recorder and deleting its namespace."""

    def __init__(
        self, name: str, closed: list[str], *, fails: bool = False, stop_fails: bool = False
    ) -> None:
        self.scenario = Scenario(name, ())
        self.namespace = f"probelab-{name}"
        self.closed = closed
        self.fails = fails
        self.stop_fails = stop_fails

    def stop_recording(self) -> None:
        if self.stop_fails:
            raise OSError("socket refused the shutdown")

    def close(self) -> None:
        self.closed.append(self.namespace)
        if self.fails:
            raise RuntimeError("namespace deletion refused")


class FakeConfig:
    def __init__(self) -> None:
        self.stash: dict[object, object] = {}

    @staticmethod
    def getoption(name: str) -> object:
        return None


def test_every_namespace_is_deleted_when_one_deletion_or_stop_fails() -> None:
    closed: list[str] = []
    run = LabRun(FakeConfig(), client.ApiClient(), "image", None)  # type: ignore[arg-type]
    fakes = {
        "a": FakeLab("a", closed, stop_fails=True),
        "b": FakeLab("b", closed, fails=True),
        "c": FakeLab("c", closed),
    }
    run.labs = fakes  # type: ignore[assignment]
    with pytest.raises(CleanupError) as caught:
        run.close()
    assert sorted(closed) == ["probelab-a", "probelab-b", "probelab-c"]  # side by side
    assert caught.value.failures == [
        "stopping the watches of a: socket refused the shutdown",
        "deleting namespace probelab-b: namespace deletion refused",
    ]


# -- `up` on a cluster with one dead component ---------------------------------------------


def test_a_running_ready_component_is_kept(local: LocalCluster) -> None:
    first = local.supervisor.start("etcd", ["sleep", "60"])
    try:
        local._start(Component("etcd", ["sleep", "60"], lambda: True, "ready"))
        record = local.supervisor.record("etcd")
        assert record is not None and record.pid == first.pid
        assert local._started == []
    finally:
        local.supervisor.stop("etcd")


def test_a_dying_component_is_waited_for_then_started_again(local: LocalCluster) -> None:
    """SIGTERM'd and shutting down: running, never ready, gone in a moment."""
    dying = local.supervisor.start("kube-apiserver", ["sleep", "1"])

    def ready() -> bool:
        record = local.supervisor.record("kube-apiserver")
        return record is not None and record.pid != dying.pid

    try:
        local._start(Component("kube-apiserver", ["sleep", "60"], ready, "/readyz", timeout=30))
        record = local.supervisor.record("kube-apiserver")
        assert record is not None and record.pid != dying.pid
        assert local._started == ["kube-apiserver"]
    finally:
        local.supervisor.stop("kube-apiserver")


def test_failed_up_on_a_running_cluster_stops_only_what_it_started(
    local: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    healthy = local.supervisor.start("etcd", ["sleep", "60"])

    def up_that_fails(*_: object) -> None:
        local._start(Component("kube-scheduler", ["sleep", "60"], lambda: True, "ready"))
        raise RuntimeError("kubelet did not become ready")

    def no_down(*, quiet: bool = False) -> None:
        raise AssertionError("down() would stop the healthy components and delete pods")

    monkeypatch.setattr(local, "is_up", lambda: False)
    monkeypatch.setattr(local, "build", lambda request=None: (None, None))
    monkeypatch.setattr(preflight, "check", lambda config, supervisor: None)
    monkeypatch.setattr(local, "_up", up_that_fails)
    monkeypatch.setattr(local, "down", no_down)
    try:
        with pytest.raises(RuntimeError, match="kubelet"):
            local.up()
        record = local.supervisor.record("etcd")
        assert record is not None and record.pid == healthy.pid
        assert not local.supervisor.is_running("kube-scheduler")
    finally:
        local.supervisor.stop("etcd")
        local.supervisor.stop("kube-scheduler")


def test_an_unchanged_component_config_is_not_rewritten(tmp_path: Path) -> None:
    """kube-proxy exits when its config file is written, even by an idempotent `up`."""
    from probelab.clusters.local.components import _write

    path = _write(tmp_path / "kube-proxy.yaml", "mode: iptables\n")
    before = path.stat().st_mtime_ns
    path.chmod(0o400)  # a rewrite would now fail for a non-root user, and change mtime
    _write(path, "mode: iptables\n")
    assert path.stat().st_mtime_ns == before
    path.chmod(0o600)
    _write(path, "mode: nftables\n")
    assert path.read_text() == "mode: nftables\n"
