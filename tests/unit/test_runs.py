"""A run's lease: who holds it and when it has expired, decided without a cluster."""

import os
import socket
import subprocess
from datetime import UTC, datetime, timedelta

from kubernetes import client

from probelab.pids import process_start_time
from probelab.runs import holder_alive, lease_expired


def test_this_process_is_alive() -> None:
    me = f"{socket.gethostname()}/{os.getpid()}/{process_start_time(os.getpid())}"
    assert holder_alive(me)


def test_a_process_that_exited_is_not_alive() -> None:
    child = subprocess.Popen(["sleep", "60"])
    start = process_start_time(child.pid)
    assert start is not None
    child.kill()
    child.wait()
    assert not holder_alive(f"{socket.gethostname()}/{child.pid}/{start}")


def test_a_recycled_pid_is_not_the_holder() -> None:
    assert not holder_alive(f"{socket.gethostname()}/{os.getpid()}/1")


def test_another_machines_holder_is_judged_by_its_lease_only() -> None:
    assert holder_alive("some-other-host/1/1")


def _lease(renewed_ago: float, duration: int = 60) -> client.V1Lease:
    now = datetime.now(UTC)
    spec = client.V1LeaseSpec(
        renew_time=now - timedelta(seconds=renewed_ago), lease_duration_seconds=duration
    )
    return client.V1Lease(spec=spec)


def test_lease_expires_after_its_duration() -> None:
    now = datetime.now(UTC)
    assert not lease_expired(_lease(59), now)
    assert lease_expired(_lease(61), now)
    assert lease_expired(client.V1Lease(spec=client.V1LeaseSpec()), now)
