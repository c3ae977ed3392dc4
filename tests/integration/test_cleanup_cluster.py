"""Cleanup on the real cluster: killed runs' namespaces go, live runs' namespaces stay.

Namespaces and Leases are made the way a lab run makes them; the "killed run" is a real
process of this machine that has exited, the "live run" this test process itself.
"""

import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from kubernetes import client

from probelab import kube
from probelab.pids import process_start_time
from probelab.runs import LEASE_NAMESPACE, LEASE_SECONDS, RunLease, lease_name

pytestmark = pytest.mark.cluster


def _make_run(api: client.ApiClient, holder: str | None, made: list[str]) -> str:
    """A namespace labelled with a fresh run id, and that run's Lease held by `holder`."""
    run_id = uuid.uuid4().hex[:8]
    if holder is not None:
        now = datetime.now(UTC)
        client.CoordinationV1Api(api).create_namespaced_lease(
            LEASE_NAMESPACE,
            client.V1Lease(
                metadata=client.V1ObjectMeta(
                    name=lease_name(run_id), labels={kube.RUN_LABEL: run_id}
                ),
                spec=client.V1LeaseSpec(
                    holder_identity=holder,
                    lease_duration_seconds=LEASE_SECONDS,
                    acquire_time=now,
                    renew_time=now,
                ),
            ),
        )
    namespace = f"probelab-cleanup-{run_id}"
    kube.create_namespace(api, namespace, {kube.RUN_LABEL: run_id})
    made.append(namespace)
    return namespace


def _dead_holder() -> str:
    child = subprocess.Popen(["sleep", "60"])
    start = process_start_time(child.pid)
    assert start is not None
    child.kill()
    child.wait()
    return f"{socket.gethostname()}/{child.pid}/{start}"


def _live_holder() -> str:
    return f"{socket.gethostname()}/{os.getpid()}/{process_start_time(os.getpid())}"


def _terminating_or_gone(core: client.CoreV1Api, name: str) -> bool:
    try:
        namespace = core.read_namespace(name)
    except client.ApiException as error:
        return bool(error.status == 404)
    return namespace.metadata is not None and namespace.metadata.deletion_timestamp is not None


@pytest.fixture
def made(kube_api: client.ApiClient) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    coordination = client.CoordinationV1Api(kube_api)
    for name in names:
        kube.delete_namespace(kube_api, name)
        try:
            coordination.delete_namespaced_lease(lease_name(_run_of(name)), LEASE_NAMESPACE)
        except client.ApiException as error:
            assert error.status == 404


def _run_of(namespace: str) -> str:
    return namespace.rsplit("-", 1)[1]


def test_sweep_deletes_only_namespaces_of_gone_runs(
    kube_api: client.ApiClient, made: list[str]
) -> None:
    killed = _make_run(kube_api, _dead_holder(), made)
    no_lease = _make_run(kube_api, None, made)
    alive = _make_run(kube_api, _live_holder(), made)
    core = client.CoreV1Api(kube_api)
    with RunLease(kube_api) as lease:
        newer = _make_run(kube_api, None, made)  # made after this run began: not stale
        swept = lease.sweep()
    assert killed in swept
    # No lease and young: a test driving Lab directly, maybe still going.
    assert alive not in swept and newer not in swept and no_lease not in swept
    assert _terminating_or_gone(core, killed)
    for kept in (alive, newer, no_lease):
        assert not _terminating_or_gone(core, kept)
    leases = client.CoordinationV1Api(kube_api).list_namespaced_lease(
        LEASE_NAMESPACE, label_selector=kube.RUN_LABEL
    )
    names = {item.metadata.name for item in leases.items if item.metadata}
    assert lease_name(lease.run_id) not in names, "a run's own lease is released at exit"
    assert lease_name(_run_of(killed)) not in names, "a gone run's lease is deleted"
