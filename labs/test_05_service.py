"""Step 5 of the seed: a Service in front of the good pod, called by name from a pod.

The seed runs `curl http://fastapi-svc/healthz` in a throwaway pod. Here the client is the
lab image itself (Python's urllib), so nothing but the pushed image is needed; the request
still goes through cluster DNS and the Service's virtual IP.
"""

import json

import pytest
from kubernetes import client

from probelab import deadlines, kube
from probelab.lab import APP_BOOT_ALLOWANCE, POD_START_ALLOWANCE, Lab

POD, SERVICE = "fastapi-good", "fastapi-svc"
MANIFESTS = ("fastapi-liveness-good.yaml", "fastapi-svc.yaml")
CLIENT = "curl"
REQUEST = (
    "import urllib.request; "
    f"print(urllib.request.urlopen('http://{SERVICE}/healthz', timeout=5).read().decode())"
)

pytestmark = pytest.mark.scenario("service", *MANIFESTS)


def _ready_ip(lab: Lab) -> str:
    readiness = lab.pod_spec(MANIFESTS[0], POD)["containers"][0]["readinessProbe"]
    lab.wait_from_start(
        POD,
        lambda t: t.first(POD, lambda o: o.ready),
        budget=deadlines.readiness_within(readiness, serving_after=APP_BOOT_ALLOWANCE),
        what=f"{POD} to be Ready",
    )
    status = client.CoreV1Api(lab.api).read_namespaced_pod(POD, lab.namespace).status
    assert status is not None and status.pod_ip
    return status.pod_ip


def test_ready_pod_is_an_endpoint(lab: Lab) -> None:
    pod_ip = _ready_ip(lab)

    def serves(slice_: client.V1EndpointSlice) -> bool:
        return any(
            pod_ip in (e.addresses or []) and e.conditions and e.conditions.ready
            for e in slice_.endpoints or []
        )

    kube.watch_until(
        client.DiscoveryV1Api(lab.api).list_namespaced_endpoint_slice,
        serves,
        timeout=POD_START_ALLOWANCE,
        what=f"{POD} ({pod_ip}) to be a ready endpoint of {SERVICE}",
        namespace=lab.namespace,
        label_selector=f"kubernetes.io/service-name={SERVICE}",
    )


def test_healthz_answers_through_the_service(lab: Lab) -> None:
    _ready_ip(lab)
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": CLIENT, "namespace": lab.namespace},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {"name": CLIENT, "image": lab.image, "command": ["python3", "-c", REQUEST]}
            ],
        },
    }
    kube.apply(lab.api, [body])
    done = lab.wait(
        lambda t: next((o for o in t.pods(CLIENT) if o.phase in ("Succeeded", "Failed")), None),
        timeout=POD_START_ALLOWANCE,
        what=f"the {CLIENT} pod to finish",
    )
    output = lab.logs(CLIENT)
    assert done.phase == "Succeeded", output
    assert json.loads(output) == {"status": "ok"}
