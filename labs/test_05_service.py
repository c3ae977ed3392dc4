"""Step 5 of the seed: a Service in front of the good pod, called by name from a pod.

The seed runs `curl http://fastapi-svc/healthz` in a throwaway pod. Here the client is the
lab image itself (Python's urllib), so nothing but the pushed image is needed; the request
still goes through cluster DNS and the Service's virtual IP.
"""

import json

import pytest

from probelab.scenario import ScenarioLab

SERVICE = "fastapi-svc"

pytestmark = pytest.mark.scenario(
    "service", "fastapi-liveness-good.yaml", "fastapi-svc.yaml", acts=True
)


def test_ready_pod_is_an_endpoint(lab: ScenarioLab) -> None:
    good = lab.pod("fastapi-good")
    good.becomes_ready()
    lab.service(SERVICE).serves(good)


def test_healthz_answers_through_the_service(lab: ScenarioLab) -> None:
    good = lab.pod("fastapi-good")
    good.becomes_ready()
    service = lab.service(SERVICE)
    service.serves(good)
    assert json.loads(service.answers("/healthz")) == {"status": "ok"}
