"""Step 3 of the seed: probes on the port the app serves keep the pod Ready and alive."""

import pytest

from probelab.scenario import ScenarioLab

pytestmark = pytest.mark.scenario("good-liveness", "fastapi-liveness-good.yaml")


def test_becomes_ready(lab: ScenarioLab) -> None:
    assert lab.pod("fastapi-good").becomes_ready().ready_text == "1/1"


def test_never_restarts_through_the_liveness_budget(lab: ScenarioLab) -> None:
    lab.pod("fastapi-good").stays_alive()
