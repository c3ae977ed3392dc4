"""The seed's cause B: liveness aimed at a path that is not a health check.

kubelet's HTTP probe counts 200-399 as success. A path that does not exist (404) or that
wants authentication (403) fails every probe, so kubelet restarts a container that is
perfectly healthy. The same probe settings on the dedicated `/healthz` never fail.
"""

import pytest

from probelab import deadlines
from probelab.lab import Lab, grace_seconds

BROKEN, FIXED = "cause-b-broken.yaml", "cause-b-fixed.yaml"
WRONG_PATHS = {"fastapi-b-notfound": 404, "fastapi-b-forbidden": 403}
HEALTHY = "fastapi-b-fixed"

pytestmark = pytest.mark.scenario("cause-b", BROKEN, FIXED)


@pytest.mark.parametrize(("pod", "status"), WRONG_PATHS.items())
def test_wrong_path_gets_the_container_restarted(lab: Lab, pod: str, status: int) -> None:
    spec = lab.pod_spec(BROKEN, pod)
    liveness = spec["containers"][0]["livenessProbe"]
    lab.wait_from_start(
        pod,
        lambda t: t.max_restarts(pod) >= 1,
        budget=deadlines.time_to_restarts(1, liveness, grace_seconds(spec)),
        what=f"{pod} to be restarted by its liveness probe",
    )
    unhealthy = lab.timeline.events(pod=pod, reason="Unhealthy")
    assert any(
        e.message.startswith("Liveness probe failed") and f"statuscode: {status}" in e.message
        for e in unhealthy
    ), f"no Unhealthy event with status {status}"
    killing = lab.timeline.events(pod=pod, reason="Killing")
    assert any("failed liveness probe, will be restarted" in e.message for e in killing)


def test_dedicated_health_path_never_fails(lab: Lab) -> None:
    liveness = lab.pod_spec(FIXED, HEALTHY)["containers"][0]["livenessProbe"]
    broken = lab.pod_spec(BROKEN, next(iter(WRONG_PATHS)))["containers"][0]["livenessProbe"]
    assert {k: v for k, v in liveness.items() if k != "httpGet"} == {
        k: v for k, v in broken.items() if k != "httpGet"
    }, "the fix should change only the path"
    lab.assert_stays_alive(HEALTHY, budget=deadlines.liveness_survived(liveness))
