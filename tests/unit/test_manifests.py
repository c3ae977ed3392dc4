"""Loading lab manifests: namespace and image rewriting, and the errors users see."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from probelab.errors import ProbelabError
from probelab.manifests import image_repository, load_manifest
from probelab.model.lab_app import PLACEHOLDER_REPOSITORY

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
IMAGE = "127.0.0.1:5000/probelab/fastapi-health:abc123"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lab.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def load(path: Path) -> list[dict[str, Any]]:
    return load_manifest(path, image=IMAGE, namespace="pl-123")


@pytest.mark.parametrize(
    ("image", "repository"),
    [
        ("YOUR_REGISTRY/fastapi-health:latest", "YOUR_REGISTRY/fastapi-health"),
        ("YOUR_REGISTRY/fastapi-health", "YOUR_REGISTRY/fastapi-health"),
        ("YOUR_REGISTRY/fastapi-health@sha256:0f", "YOUR_REGISTRY/fastapi-health"),
        ("localhost:5000/fastapi-health:1.0", "localhost:5000/fastapi-health"),
        ("localhost:5000/fastapi-health", "localhost:5000/fastapi-health"),
    ],
)
def test_image_repository_strips_tag_and_digest_but_not_port(image: str, repository: str) -> None:
    assert image_repository(image) == repository


@pytest.mark.parametrize(
    ("file", "kind", "name"),
    [
        ("fastapi-liveness-bad.yaml", "Pod", "fastapi-bad"),
        ("fastapi-liveness-good.yaml", "Pod", "fastapi-good"),
        ("fastapi-slow-startup.yaml", "Pod", "fastapi-slow"),
        ("fastapi-slow-no-startup.yaml", "Pod", "fastapi-slow-nostartup"),
        ("fastapi-svc.yaml", "Service", "fastapi-svc"),
    ],
)
def test_lab_manifests_load_into_the_run_namespace(file: str, kind: str, name: str) -> None:
    (obj,) = load(MANIFESTS / file)
    assert (obj["kind"], obj["metadata"]["name"]) == (kind, name)
    assert obj["metadata"]["namespace"] == "pl-123"
    if kind == "Pod":
        assert [c["image"] for c in obj["spec"]["containers"]] == [IMAGE]


def test_namespace_file_yields_nothing_because_the_harness_owns_namespaces() -> None:
    assert load(MANIFESTS / "namespace.yaml") == []


def test_lab_manifests_keep_the_seed_placeholder_and_namespace() -> None:
    for path in MANIFESTS.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        assert "namespace: demo" in text or "name: demo" in text, path.name
        assert "dkr.ecr" not in text and "amazonaws" not in text, path.name


def test_bad_pod_probes_the_wrong_port_exactly_as_the_seed() -> None:
    (pod,) = load(MANIFESTS / "fastapi-liveness-bad.yaml")
    probe = pod["spec"]["containers"][0]["livenessProbe"]
    assert probe == {
        "httpGet": {"path": "/healthz", "port": 8000},
        "initialDelaySeconds": 3,
        "periodSeconds": 5,
        "timeoutSeconds": 1,
        "failureThreshold": 2,
    }
    assert pod["metadata"]["labels"] == {"app": "fastapi-bad"}


def test_slow_pods_differ_by_the_startup_probe_and_a_surer_boot() -> None:
    """The control boots 40 s instead of 30 so that liveness surely gives up first."""
    (with_startup,) = load(MANIFESTS / "fastapi-slow-startup.yaml")
    (without,) = load(MANIFESTS / "fastapi-slow-no-startup.yaml")
    guarded = with_startup["spec"]["containers"][0]
    bare = without["spec"]["containers"][0]
    assert guarded["startupProbe"]["periodSeconds"] == 2
    assert guarded["startupProbe"]["failureThreshold"] == 20
    assert {"name": "STARTUP_SLEEP", "value": "30"} in guarded["env"]
    assert {"name": "STARTUP_SLEEP", "value": "40"} in bare["env"]
    del guarded["startupProbe"]
    guarded["env"] = bare["env"]
    assert guarded == bare
    assert with_startup["metadata"]["labels"] == {"app": "fastapi-slow"}


def test_every_container_and_init_container_with_the_placeholder_is_replaced(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        """
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      initContainers: [{name: init, image: "YOUR_REGISTRY/fastapi-health:1.0"}]
      containers:
        - {name: app, image: "YOUR_REGISTRY/fastapi-health"}
        - {name: sidecar, image: "busybox:1.36"}
---
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick, namespace: elsewhere}
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: job, image: "YOUR_REGISTRY/fastapi-health:latest"}]
""",
    )
    deployment, cronjob = load(path)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["image"] == IMAGE
    assert [c["image"] for c in pod["containers"]] == [IMAGE, "busybox:1.36"]
    job_pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert job_pod["containers"][0]["image"] == IMAGE
    assert cronjob["metadata"]["namespace"] == "pl-123"


def test_a_similar_repository_is_not_mistaken_for_the_placeholder(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
kind: Pod
metadata: {{name: p}}
spec:
  containers:
    - {{name: a, image: "{PLACEHOLDER_REPOSITORY}-v2:latest"}}
    - {{name: b, image: "{PLACEHOLDER_REPOSITORY}:latest"}}
""",
    )
    (pod,) = load(path)
    images = [c["image"] for c in pod["spec"]["containers"]]
    assert images == [f"{PLACEHOLDER_REPOSITORY}-v2:latest", IMAGE]


def test_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ProbelabError, match=r"nope\.yaml: manifest file not found"):
        load(missing)


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "kind: Pod\nmetadata:\n  name: [unclosed\n")
    with pytest.raises(ProbelabError) as caught:
        load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:")
    assert "invalid YAML" in message
    line = int(message[len(str(path)) + 1 :].split(":", 1)[0])
    assert line >= 3
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("- just\n- a list\n", "document 1 is a list, not a mapping"),
        ("metadata: {name: x}\n", "document 1 has no kind"),
        ("kind: Pod\nmetadata: {labels: {}}\n", "document 1 (Pod) has no metadata.name"),
        ("kind: Service\nmetadata: {name: s}\n---\nkind: Pod\n", "document 2 (Pod) has no"),
        ("kind: Pod\nmetadata: {name: p}\n", "Pod/p has no mapping at spec"),
        ("kind: Pod\nmetadata: {name: p}\nspec: {containers: [app]}\n", "containers[0] is not"),
    ],
)
def test_malformed_documents_are_reported(tmp_path: Path, text: str, complaint: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ProbelabError, match=str(path)) as caught:
        load(path)
    assert complaint in str(caught.value)


def test_pods_without_the_placeholder_say_which_image_they_use(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
kind: Pod
metadata: {name: fastapi-bad}
spec:
  containers: [{name: app, image: "registry.example/other:1.0"}]
""",
    )
    with pytest.raises(ProbelabError) as caught:
        load(path)
    message = str(caught.value)
    assert "no container uses the placeholder image" in message
    assert "Pod/fastapi-bad uses" in message and "registry.example/other:1.0" in message


def test_a_manifest_without_pods_needs_no_placeholder(tmp_path: Path) -> None:
    path = write(tmp_path, "kind: ConfigMap\nmetadata: {name: c}\ndata: {k: v}\n")
    (config_map,) = load(path)
    assert config_map["metadata"] == {"name": "c", "namespace": "pl-123"}
