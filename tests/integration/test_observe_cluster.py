"""`observe` on the real cluster: predict's schema, close to predict's numbers, and a
namespace that is gone afterwards, also after Ctrl-C."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from kubernetes import client

from probelab import observe
from probelab.errors import ProbelabError
from probelab.lab import Lab
from probelab.predict import predict
from probelab.registries.base import Registry

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "manifests" / "fastapi-liveness-bad.yaml"
GOAL_MAX_ERROR = 3.0  # seconds: the accuracy goal's worst case

pytestmark = pytest.mark.cluster


def _prefix(request: pytest.FixtureRequest) -> str:
    return f"{request.config.getoption('namespace_prefix')}-obs-{uuid.uuid4().hex[:4]}"


def _ours(api: client.ApiClient, prefix: str) -> dict[str, bool]:
    """This test's namespaces, and whether each is being deleted."""
    found = {}
    for namespace in client.CoreV1Api(api).list_namespace().items:
        meta = namespace.metadata or client.V1ObjectMeta()
        if (meta.name or "").startswith(prefix):
            found[str(meta.name)] = meta.deletion_timestamp is not None
    return found


def _left_behind(api: client.ApiClient, prefix: str) -> list[str]:
    """Namespaces of this test that exist and are not being deleted."""
    return [name for name, deleting in _ours(api, prefix).items() if not deleting]


def test_the_seed_bad_pod_observed_as_predicted(
    request: pytest.FixtureRequest, kube_api: client.ApiClient, lab_image: str, registry: Registry
) -> None:
    prefix = _prefix(request)
    seen = observe.observe(
        kube_api, BAD, duration=25, image=lab_image, registry=registry, namespace_prefix=prefix
    )
    expected = predict(BAD, duration=25)
    (o,), (p,) = seen.pods[0].containers, expected.pods[0].containers
    assert seen.as_json().keys() == expected.as_json().keys()
    assert o.as_json().keys() == p.as_json().keys()
    assert len(o.restarts_at) == len(p.restarts_at) == 2
    for observed, predicted in zip(o.restarts_at, p.restarts_at, strict=True):
        assert abs(observed - predicted) <= GOAL_MAX_ERROR, (o.restarts_at, p.restarts_at)
    kinds = {e.kind for e in o.events}
    assert {"started", "unhealthy", "killing"} <= kinds
    assert _left_behind(kube_api, prefix) == []


def test_a_deployment_is_observed_as_its_pod_template(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    kube_api: client.ApiClient,
    lab_image: str,
    registry: Registry,
) -> None:
    manifest = tmp_path / "deployment.yaml"
    manifest.write_text(
        """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: app
          image: YOUR_REGISTRY/fastapi-health:latest
          readinessProbe: {httpGet: {path: /ready, port: 8080}, periodSeconds: 3}
""",
        encoding="utf-8",
    )
    seen = observe.observe(
        kube_api,
        manifest,
        duration=8,
        image=lab_image,
        registry=registry,
        namespace_prefix=_prefix(request),
    )
    (pod,) = seen.pods
    (container,) = pod.containers
    (predicted,) = predict(manifest, duration=8).pods[0].containers
    assert pod.name == "web" and container.restarts_at == []
    assert container.ready_at is not None and predicted.ready_at is not None
    assert abs(container.ready_at - predicted.ready_at) <= GOAL_MAX_ERROR


def test_ctrl_c_still_deletes_the_namespace(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    kube_api: client.ApiClient,
    lab_image: str,
    registry: Registry,
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Lab, "assert_never", interrupted)
    prefix = _prefix(request)
    with pytest.raises(KeyboardInterrupt):
        observe.observe(
            kube_api, BAD, duration=30, image=lab_image, registry=registry, namespace_prefix=prefix
        )
    assert _ours(kube_api, prefix)  # it existed ...
    assert _left_behind(kube_api, prefix) == []  # ... and its deletion has begun


def test_bad_input_fails_before_anything_is_created(
    request: pytest.FixtureRequest, kube_api: client.ApiClient, lab_image: str, registry: Registry
) -> None:
    prefix = _prefix(request)
    with pytest.raises(ProbelabError, match="no Pod or pod template"):
        observe.observe(
            kube_api,
            ROOT / "manifests" / "fastapi-svc.yaml",
            duration=5,
            image=lab_image,
            registry=registry,
            namespace_prefix=prefix,
        )
    assert _ours(kube_api, prefix) == {}
