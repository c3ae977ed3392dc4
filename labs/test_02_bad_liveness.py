"""Step 2 of the seed: liveness probes port 8000 while the app listens on 8080.

Every probe is refused, so kubelet kills the healthy container after failureThreshold
failures and restarts it, again and again, until the back-off grows longer than the
container runs and the pod shows CrashLoopBackOff.
"""

import pytest

from probelab.scenario import ScenarioLab

pytestmark = pytest.mark.scenario("bad-liveness", "fastapi-liveness-bad.yaml")


def test_restarts_climb_into_crash_loop_back_off(lab: ScenarioLab) -> None:
    bad = lab.pod("fastapi-bad")
    bad.restarts_at_least(3)
    bad.shows("CrashLoopBackOff")


def test_events_name_the_liveness_probe(lab: ScenarioLab) -> None:
    bad = lab.pod("fastapi-bad")
    bad.shows("CrashLoopBackOff")
    unhealthy = bad.events("Unhealthy")
    assert unhealthy, "no Unhealthy event"
    assert all("Liveness probe failed" in e.message for e in unhealthy)
    assert any(
        ":8000/healthz" in e.message and "connection refused" in e.message for e in unhealthy
    )
    assert any(
        "failed liveness probe, will be restarted" in e.message for e in bad.events("Killing")
    )
    assert any("Back-off restarting failed container" in e.message for e in bad.events("BackOff"))


def test_previous_logs_show_a_graceful_shutdown(lab: ScenarioLab) -> None:
    bad = lab.pod("fastapi-bad")
    bad.restarts_at_least(1)
    previous = bad.previous_logs()
    assert "Uvicorn running on http://0.0.0.0:8080" in previous
    assert "Shutting down" in previous
