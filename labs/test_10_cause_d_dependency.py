"""The seed's cause D: a health check that includes a dependency.

`fastapi-dep` (a second copy of the app, behind its own Service) stands in for a database.
Both dependent pods check it in readiness; the broken one checks it in liveness too. The
dependency goes down on its own schedule (its `activeDeadlineSeconds`), so nothing here
waits for a test to act: kubelet then restarts the broken pod, which cannot bring the
dependency back, while the fixed pod only turns NotReady and drops out of its Service's
ready endpoints, without a restart.
"""

from datetime import datetime

import pytest

from probelab.scenario import ScenarioLab

DEPENDENCY_MANIFEST, BROKEN_MANIFEST = "cause-d-dependency.yaml", "cause-d-broken.yaml"
FIXED_MANIFEST = "cause-d-fixed.yaml"
DEPENDENCY_DOWN = "statuscode: 503"  # what /ready answers without its dependency

pytestmark = pytest.mark.scenario("cause-d", DEPENDENCY_MANIFEST, BROKEN_MANIFEST, FIXED_MANIFEST)


def _dependency_down(lab: ScenarioLab) -> datetime:
    """When kubelet ended the dependency; both dependent pods were Ready before it."""
    ended = lab.pod("fastapi-dep").ends()
    for name in ("fastapi-d-broken", "fastapi-d-fixed"):
        ready = lab.timeline.first(name, lambda o: o.ready)
        assert ready is not None and ready.at < ended.at, f"{name} was not Ready in time"
    return ended.at


def test_liveness_on_the_dependency_restarts_the_pod(lab: ScenarioLab) -> None:
    down_at = _dependency_down(lab)
    broken = lab.pod("fastapi-d-broken").with_dependency_down(down_at)
    assert broken.model.container()["livenessProbe"]["httpGet"]["path"] == "/ready"
    restarted = broken.is_restarted_by("liveness")
    assert restarted.at > down_at, "restarted while the dependency was still up"
    failed = broken.events("Unhealthy", contains="Liveness probe failed")
    assert any(DEPENDENCY_DOWN in e.message for e in failed), [e.message for e in failed]


def test_readiness_on_the_dependency_only_takes_it_out_of_the_service(lab: ScenarioLab) -> None:
    down_at = _dependency_down(lab)
    fixed = lab.pod("fastapi-d-fixed").with_dependency_down(down_at)
    fixed.turns_unready()
    lab.service("fastapi-d-svc").lists_unready(fixed)
    failed = fixed.events("Unhealthy", contains="Readiness probe failed")
    assert any(DEPENDENCY_DOWN in e.message for e in failed), [e.message for e in failed]
    fixed.stays_alive()
