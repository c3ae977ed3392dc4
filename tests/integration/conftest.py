"""Scenarios started by integration tests themselves (outside a lab session), each in a
namespace of its own that is deleted at the end of the test."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from probelab import kube
from probelab.lab import Scenario, namespace_name
from probelab.model.rules import Kubelet
from probelab.registries.base import Registry
from probelab.scenario import ScenarioLab

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
StartLab = Callable[[str, str], ScenarioLab]


@pytest.fixture
def start_lab(
    request: pytest.FixtureRequest, kube_api: client.ApiClient, lab_image: str, registry: Registry
) -> Iterator[StartLab]:
    """`start_lab(name, manifest)`: a started scenario of one shipped manifest."""
    prefix = request.config.getoption("namespace_prefix")
    kubelet = Kubelet.parse(kube.kubelet_version(kube_api))
    started: list[ScenarioLab] = []

    def start(name: str, manifest: str) -> ScenarioLab:
        lab = ScenarioLab(
            kube_api,
            Scenario(name, (manifest,)),
            namespace=namespace_name(prefix, name),
            run_id="integration",
            image=lab_image,
            registry=registry,
            manifests_dir=MANIFESTS,
            kubelet=kubelet,
        )
        started.append(lab)
        lab.start()
        return lab

    yield start
    for lab in started:
        lab.close()
