"""A lab wait whose pod or namespace is deleted under it fails at once, saying so, instead
of at its deadline, and never passes a "this never happens" check that way."""

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from probelab.errors import WaitAborted
from probelab.model.waits import nth_restart
from probelab.scenario import ScenarioLab

pytestmark = pytest.mark.cluster
StartLab = Callable[[str, str], ScenarioLab]  # the `start_lab` fixture (conftest.py)

NOTICED = 10.0
"""Seconds from a deletion to the wait failing: one watch event, on a busy machine."""


def test_a_wait_fails_at_once_when_its_pod_is_deleted(start_lab: StartLab) -> None:
    lab = start_lab("gone-pod", "fastapi-liveness-bad.yaml")
    bad = lab.pod("fastapi-bad")
    started = lab.container_started("fastapi-bad")
    deadline = bad.forecast(nth_restart(3), what="3 restarts").latest
    deleting = threading.Thread(
        target=lab.core.delete_namespaced_pod, args=("fastapi-bad", lab.namespace)
    )
    deleting.start()  # the event may come before or during the wait: it fails at once
    asked = time.monotonic()
    with pytest.raises(WaitAborted) as caught:
        bad.restarts_at_least(3)
    deleting.join()
    took = time.monotonic() - asked
    head = str(caught.value).splitlines()[0]
    assert head.endswith("pod fastapi-bad is being deleted"), head
    assert took < NOTICED, f"failed {took:.1f}s after the deletion"
    left = deadline - (datetime.now(UTC) - started).total_seconds()
    assert left > 0, "failed no earlier than its deadline"


def test_a_never_check_does_not_pass_when_its_pod_is_deleted(start_lab: StartLab) -> None:
    """`stays_alive` reads a timeout as success: a deleted pod must not get there."""
    lab = start_lab("gone-alive", "fastapi-liveness-good.yaml")
    good = lab.pod("fastapi-good")
    good.becomes_ready()
    deleting = threading.Thread(
        target=lab.core.delete_namespaced_pod, args=("fastapi-good", lab.namespace)
    )
    deleting.start()  # the event may come before or during the wait: it fails at once
    asked = time.monotonic()
    with pytest.raises(WaitAborted, match="pod fastapi-good is being deleted"):
        good.stays_alive()
    deleting.join()
    assert time.monotonic() - asked < NOTICED


def test_a_wait_fails_at_once_when_its_namespace_is_deleted(start_lab: StartLab) -> None:
    lab = start_lab("gone-namespace", "fastapi-liveness-good.yaml")
    lab.container_started("fastapi-good")
    deleting = threading.Thread(target=lab.core.delete_namespace, args=(lab.namespace,))
    deleting.start()  # the event may come before or during the wait: it fails at once
    asked = time.monotonic()
    with pytest.raises(WaitAborted) as caught:
        lab.wait(lambda t: None, timeout=300, what="something that never comes")
    deleting.join()
    head = str(caught.value).splitlines()[0]
    assert head == (
        f"something that never comes: its namespace {lab.namespace} is being deleted"
    ), head
    assert time.monotonic() - asked < NOTICED
