"""Step 2 of the seed: liveness probes port 8000 while the app listens on 8080.

Every probe is refused, so kubelet kills the healthy container after failureThreshold
failures and restarts it, again and again, until the back-off grows longer than the
container runs and the pod shows CrashLoopBackOff.
"""

import pytest

from probelab import deadlines
from probelab.lab import POD_START_ALLOWANCE, Lab, grace_seconds

POD = "fastapi-bad"
MANIFEST = "fastapi-liveness-bad.yaml"
RESTARTS = 3

pytestmark = pytest.mark.scenario("bad-liveness", MANIFEST)


def _budget(lab: Lab) -> float:
    """Seconds from first start until 3 restarts and CrashLoopBackOff are both certain."""
    spec = lab.pod_spec(MANIFEST, POD)
    liveness = spec["containers"][0]["livenessProbe"]
    grace = grace_seconds(spec)
    return max(
        deadlines.time_to_restarts(RESTARTS, liveness, grace),
        deadlines.time_to_crash_loop(liveness, grace),
    )


def test_restarts_climb_into_crash_loop_back_off(lab: Lab) -> None:
    lab.wait_from_start(
        POD,
        lambda t: (
            t.max_restarts(POD) >= RESTARTS
            and t.first(POD, lambda o: o.status == "CrashLoopBackOff")
        ),
        budget=_budget(lab),
        what=f"{POD} to restart {RESTARTS} times and show CrashLoopBackOff",
    )
    assert lab.timeline.max_restarts(POD) >= RESTARTS


def test_events_name_the_liveness_probe(lab: Lab) -> None:
    lab.wait_from_start(
        POD,
        lambda t: t.events(pod=POD, reason="BackOff"),
        budget=_budget(lab),
        what=f"a BackOff event for {POD}",
    )
    unhealthy = lab.timeline.events(pod=POD, reason="Unhealthy")
    assert unhealthy, "no Unhealthy event"
    assert all("Liveness probe failed" in e.message for e in unhealthy)
    assert any(
        ":8000/healthz" in e.message and "connection refused" in e.message for e in unhealthy
    )
    killing = lab.timeline.events(pod=POD, reason="Killing")
    assert any("failed liveness probe, will be restarted" in e.message for e in killing)
    back_off = lab.timeline.events(pod=POD, reason="BackOff")
    assert any("Back-off restarting failed container" in e.message for e in back_off)


def test_previous_logs_show_a_graceful_shutdown(lab: Lab) -> None:
    lab.wait(
        lambda t: t.max_restarts(POD) >= 1,
        timeout=POD_START_ALLOWANCE + _budget(lab),
        what=f"{POD} to restart once",
    )
    previous = lab.logs(POD, previous=True)
    assert "Uvicorn running on http://0.0.0.0:8080" in previous
    assert "Shutting down" in previous
