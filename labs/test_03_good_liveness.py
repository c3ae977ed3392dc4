"""Step 3 of the seed: probes on the port the app serves keep the pod Ready and alive."""

import pytest

from probelab import deadlines
from probelab.lab import APP_BOOT_ALLOWANCE, Lab

POD = "fastapi-good"
MANIFEST = "fastapi-liveness-good.yaml"

pytestmark = pytest.mark.scenario("good-liveness", MANIFEST)


def test_becomes_ready(lab: Lab) -> None:
    readiness = lab.pod_spec(MANIFEST, POD)["containers"][0]["readinessProbe"]
    ready = lab.wait_from_start(
        POD,
        lambda t: t.first(POD, lambda o: o.ready),
        budget=deadlines.readiness_within(readiness, serving_after=APP_BOOT_ALLOWANCE),
        what=f"{POD} to be Ready",
    )
    assert ready.ready_text == "1/1"


def test_never_restarts_through_the_liveness_budget(lab: Lab) -> None:
    liveness = lab.pod_spec(MANIFEST, POD)["containers"][0]["livenessProbe"]
    lab.assert_stays_alive(POD, budget=deadlines.liveness_survived(liveness))
