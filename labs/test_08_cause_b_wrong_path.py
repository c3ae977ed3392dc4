"""The seed's cause B: liveness aimed at a path that is not a health check.

kubelet's HTTP probe counts 200-399 as success. A path that does not exist (404) or that
wants authentication (403) fails every probe, so kubelet restarts a container that is
perfectly healthy. The same probe settings on the dedicated `/healthz` never fail.
"""

import pytest

from probelab.scenario import ScenarioLab

BROKEN, FIXED = "cause-b-broken.yaml", "cause-b-fixed.yaml"
WRONG_PATHS = {"fastapi-b-notfound": 404, "fastapi-b-forbidden": 403}

pytestmark = pytest.mark.scenario("cause-b", BROKEN, FIXED)


@pytest.mark.parametrize(("pod", "status"), WRONG_PATHS.items())
def test_wrong_path_gets_the_container_restarted(lab: ScenarioLab, pod: str, status: int) -> None:
    wrong = lab.pod(pod)
    wrong.is_restarted_by("liveness")
    assert any(
        e.message.startswith("Liveness probe failed") and f"statuscode: {status}" in e.message
        for e in wrong.events("Unhealthy")
    ), f"no Unhealthy event with status {status}"


def test_dedicated_health_path_never_fails(lab: ScenarioLab) -> None:
    fixed = lab.pod("fastapi-b-fixed")
    broken = lab.pod(next(iter(WRONG_PATHS)))
    timing = [
        {k: v for k, v in pod.model.container()["livenessProbe"].items() if k != "httpGet"}
        for pod in (fixed, broken)
    ]
    assert timing[0] == timing[1], "the fix should change only the path"
    fixed.stays_alive()
