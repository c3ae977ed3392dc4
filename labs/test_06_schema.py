"""Step 6 of the seed: what `kubectl explain` shows about probes, read from the server.

The server's OpenAPI document must describe all three probes on a container and the four
probe handlers. The server's version goes into the test report.
"""

import json
from typing import Any

import pytest
from kubernetes import client

from probelab import kube

PROBES = {"startupProbe", "livenessProbe", "readinessProbe"}
HANDLERS = {"httpGet", "exec", "tcpSocket", "grpc"}
PROBE_FIELDS = {
    "initialDelaySeconds",
    "periodSeconds",
    "timeoutSeconds",
    "failureThreshold",
    "successThreshold",
}


@pytest.fixture(scope="module")
def core_v1_schemas(kube_api: client.ApiClient) -> dict[str, Any]:
    document = json.loads(kube.get_raw(kube_api, "/openapi/v3/api/v1"))
    schemas: dict[str, Any] = document["components"]["schemas"]
    return schemas


def test_container_has_the_three_probes(core_v1_schemas: dict[str, Any]) -> None:
    container = core_v1_schemas["io.k8s.api.core.v1.Container"]["properties"]
    assert container.keys() >= PROBES


def test_probe_has_every_handler_and_timing_field(core_v1_schemas: dict[str, Any]) -> None:
    probe = core_v1_schemas["io.k8s.api.core.v1.Probe"]["properties"]
    assert probe.keys() >= HANDLERS
    assert probe.keys() >= PROBE_FIELDS
    grpc = core_v1_schemas["io.k8s.api.core.v1.GRPCAction"]["properties"]
    assert {"port", "service"} <= grpc.keys()


def test_server_version_is_reported(
    kube_api: client.ApiClient, record_testsuite_property: Any
) -> None:
    version = kube.check_reachable(kube_api)
    record_testsuite_property("kubernetes_version", version)
    assert version.startswith("v1.")
