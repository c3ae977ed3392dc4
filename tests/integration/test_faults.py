"""Faults on the running local cluster: `cluster up` brings back just what died, and a lab
in flight either passes or fails saying what happened to it.

These stop real components of the shared cluster, so they run only when asked
(PROBELAB_FAULTS=1) and alone (the project's machines take the cluster lock exclusively
for this file). Each test leaves every component running again, and checks that the
healthy ones were never restarted. Its first run found an idempotent `up` restarting a
healthy kube-proxy (fixed: configs are written only when they change).
"""

import base64
import os
import shutil
import signal
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kubernetes import client

from probelab import kube
from probelab.clusters.local.cluster import COMPONENTS, LocalCluster
from probelab.clusters.local.processes import Supervisor
from probelab.docker_engine import docker_client
from probelab.errors import ProbelabError
from probelab.images import IMAGE_NAME, build_and_push, content_tag
from probelab.model.waits import crash_loop_back_off
from probelab.scenario import ScenarioLab

pytestmark = pytest.mark.cluster
StartLab = Callable[[str, str], ScenarioLab]  # the `start_lab` fixture (conftest.py)
APP = Path(__file__).resolve().parents[2] / "app"
OUTAGE = 15.0
"""Seconds the API server stays stopped: longer than a watch window (5 s), shorter than the
client's retries of one request (30 s) and the node-monitor grace period (the node would
turn NotReady). It is the fault's length, not a synchronisation."""
NOTICED = 10.0
"""Seconds a wait may run past its deadline on a busy machine before it counts as hung."""


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


def _outcome(*checks: Callable[[], object]) -> str | None:
    """None when every lab check passed, else the first line of the first failure."""
    try:
        for check in checks:
            check()
    except AssertionError as error:
        return str(error).splitlines()[0]
    return None


def test_lab_waits_resume_after_an_api_server_outage(
    local: LocalCluster, start_lab: StartLab
) -> None:
    """The API server stopped for OUTAGE seconds and started again while the bad pod
    restarts: the watches resume from new lists; the lab passes, or fails naming the outage."""
    lab = start_lab("fault-apiserver", "fastapi-liveness-bad.yaml")
    bad = lab.pod("fastapi-bad")
    started = lab.container_started("fastapi-bad")
    deadline = bad.forecast(crash_loop_back_off, what="CrashLoopBackOff").latest
    before = _pids(local)
    core = client.CoreV1Api(lab.api)
    times: dict[str, datetime] = {}
    stopped = threading.Event()
    seen_after: list[object] = []

    def outage() -> None:
        local.supervisor.stop("kube-apiserver")
        times["stopped"] = datetime.now(UTC)
        stopped.set()
        threading.Event().wait(OUTAGE)
        local.up()
        times["back"] = datetime.now(UTC)
        core.create_namespaced_config_map(
            lab.namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="after-outage"))
        )

    def watch_through_it() -> None:  # a kube.watch_until begun while the server is away
        stopped.wait()
        seen_after.append(
            kube.watch_until(
                core.list_namespaced_config_map,
                lambda cm: cm.metadata.name == "after-outage" and cm,
                timeout=OUTAGE + 90,
                what="the ConfigMap made after the outage",
                namespace=lab.namespace,
            )
        )

    threads = [threading.Thread(target=outage), threading.Thread(target=watch_through_it)]
    for thread in threads:
        thread.start()
    failure = _outcome(lambda: bad.restarts_at_least(3), lambda: bad.shows("CrashLoopBackOff"))
    for thread in threads:
        thread.join()

    took = (datetime.now(UTC) - started).total_seconds()
    assert took < deadline + NOTICED, f"the lab's waits ran {took:.0f}s (deadline {deadline:.0f}s)"
    assert failure is None or "API server" in failure, failure
    lost, ongoing = lab.timeline.unreachable_seconds(started, datetime.now(UTC))
    print(f"lab: {failure or 'passed'}; watches saw the server away for {lost:.1f}s")
    assert lost >= OUTAGE - 1 and not ongoing, (lost, ongoing)
    assert any(o.at > times["back"] for o in lab.timeline.pods("fastapi-bad")), "never resumed"
    assert len(seen_after) == 1, "watch_until did not resume after the outage"
    if failure is None:
        assert lab.timeline.max_restarts("fastapi-bad") >= 3
    others = [n for n in COMPONENTS if n != "kube-apiserver"]
    assert {n: _pids(local)[n] for n in others} == {n: before[n] for n in others}
    assert local.is_up()


def test_a_kubelet_restart_during_the_crash_loop_is_named_or_harmless(
    local: LocalCluster, start_lab: StartLab
) -> None:
    """kubelet stopped and started again between the bad pod's restarts: the lab passes, or
    its failure names the kubelet restart (probes and back-off start afresh after one)."""
    lab = start_lab("fault-kubelet", "fastapi-liveness-bad.yaml")
    bad = lab.pod("fastapi-bad")
    started = lab.container_started("fastapi-bad")
    bad.restarts_at_least(1)
    before = _pids(local)
    local.supervisor.stop("kubelet")
    local.up()
    failure = _outcome(lambda: bad.restarts_at_least(3), lambda: bad.shows("CrashLoopBackOff"))
    print(f"lab: {failure or 'passed'}")
    assert failure is None or "kubelet restarted at" in failure, failure
    assert lab.kubelet_restarts(started), "no 'Starting kubelet.' event after the restart"
    if failure is None:
        assert lab.timeline.max_restarts("fastapi-bad") >= 3
    after = _pids(local)
    assert after["kubelet"] not in (None, before["kubelet"])
    others = [n for n in COMPONENTS if n != "kubelet"]
    assert {n: after[n] for n in others} == {n: before[n] for n in others}


def test_a_push_to_a_stopped_registry_fails_in_one_line_naming_it(
    local: LocalCluster, tmp_path: Path
) -> None:
    """Nothing is built: the registry is asked for the tag first, and its silence is the
    error, one line, with no form of its password in it."""
    registry = local.registry()
    context = tmp_path / "app"
    shutil.copytree(APP, context)
    (context / "fault-test").write_text(uuid.uuid4().hex)  # a tag the registry cannot hold
    engine = docker_client(local.handle(owned=False).docker_host)
    local.supervisor.stop("registry")
    try:
        with pytest.raises(ProbelabError) as caught:
            build_and_push(engine, context, registry)
    finally:
        local.up()
    message = str(caught.value)
    print(message)
    assert "\n" not in message and f"the registry {registry.host} does not answer" in message
    creds = registry.credentials()
    for secret in (creds.password, f"{creds.username}:{creds.password}"):
        for form in (secret, base64.b64encode(secret.encode()).decode()):
            assert form not in message
    reference = f"{registry.repository(IMAGE_NAME)}:{content_tag(context)}"
    assert not engine.images.list(name=reference), "an image was built"
    engine.close()
    assert local.is_up()
