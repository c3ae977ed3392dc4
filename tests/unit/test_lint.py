"""lint: the seed's bad manifests are flagged at the right field with the right fix, the
good ones are clean, and bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from probelab.cli import main
from probelab.errors import ProbelabError
from probelab.lint import Finding, lint

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
BENCH = ROOT / "benchmarks" / "manifests"
LAB = "YOUR_REGISTRY/fastapi-health:latest"


def write(tmp_path: Path, container: str, *, image: str = LAB) -> Path:
    """A one-container pod; ``container`` is YAML indented for the container's fields."""
    path = tmp_path / "pod.yaml"
    path.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
        f"    - name: app\n      image: {image}\n{container}",
        encoding="utf-8",
    )
    return path


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, [f.render() for f in findings]
    return findings[0]


@pytest.mark.parametrize(
    "name",
    ["fastapi-liveness-good.yaml", "fastapi-slow-startup.yaml"],
)
def test_good_manifests_are_clean(name: str) -> None:
    assert lint(MANIFESTS / name) == []


@pytest.mark.parametrize(
    ("path", "field", "fix"),
    [
        (MANIFESTS / "fastapi-liveness-bad.yaml", "livenessProbe.httpGet.port",
         {"livenessProbe": {"httpGet": {"port": 8080}}}),
        (BENCH / "wrong-path.yaml", "livenessProbe.httpGet.path",
         {"livenessProbe": {"httpGet": {"path": "/healthz"}}}),
        (BENCH / "slow-health.yaml", "livenessProbe.timeoutSeconds",
         {"livenessProbe": {"timeoutSeconds": 4}}),
        (BENCH / "startup-too-short.yaml", "startupProbe.failureThreshold",
         {"startupProbe": {"failureThreshold": 11}}),
    ],
)  # fmt: skip
def test_the_seed_causes_are_flagged_at_their_field(
    path: Path, field: str, fix: dict[str, object]
) -> None:
    finding = only(lint(path))
    assert (finding.severity, finding.field, dict(finding.fix)) == ("error", field, fix)
    assert finding.render().startswith(f"{path}: Pod/")


def test_slow_start_without_startup_probe_gets_one() -> None:
    finding = only(lint(MANIFESTS / "fastapi-slow-no-startup.yaml"))
    assert finding.severity == "error" and finding.field == "startupProbe"
    assert "liveness can kill the app 20s after it starts" in finding.message
    startup = finding.fix["startupProbe"]
    assert startup["httpGet"] == {"path": "/healthz", "port": 8080}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30


def test_slow_start_covered_by_initial_delay_is_a_warning(tmp_path: Path) -> None:
    env = '[{name: SLOW_START, value: "1"}, {name: STARTUP_SLEEP, value: "10"}]'
    liveness = "{httpGet: {path: /healthz, port: 8080}, initialDelaySeconds: 40}"
    path = write(tmp_path, f"      env: {env}\n      livenessProbe: {liveness}\n")
    assert only(lint(path)).severity == "warning"


def test_liveness_on_a_dependency_is_an_error_and_same_as_readiness_a_warning() -> None:
    findings = lint(BENCH / "dependency-in-liveness.yaml")
    assert [(f.severity, f.field) for f in findings] == [
        ("warning", "livenessProbe"),
        ("error", "livenessProbe.httpGet.path"),
    ]


@pytest.mark.parametrize(
    ("container", "field", "message"),
    [
        ("      ports: [{containerPort: 8080, name: http}]\n"
         "      livenessProbe: {httpGet: {port: web}}\n",
         "livenessProbe.httpGet.port", "no containerPort is named 'web' (named: http)"),
        ("      ports: [{containerPort: 9000}]\n      readinessProbe: {tcpSocket: {port: 9001}}\n",
         "readinessProbe.tcpSocket.port", "9001 is not a containerPort (9000)"),
        ("      ports: [{containerPort: 9090, name: grpc}]\n"
         "      livenessProbe: {grpc: {port: grpc}}\n",
         "livenessProbe.grpc.port", "gRPC probes take a port number, not the name 'grpc'"),
    ],
)  # fmt: skip
def test_structural_checks_hold_for_any_image(
    tmp_path: Path, container: str, field: str, message: str
) -> None:
    finding = only(lint(write(tmp_path, container, image="example/api:1")))
    assert (finding.field, finding.message) == (field, message)


def test_grpc_fix_uses_the_named_ports_number(tmp_path: Path) -> None:
    container = "      ports: [{containerPort: 9090, name: grpc}]\n"
    container += "      livenessProbe: {grpc: {port: grpc}}\n"
    path = write(tmp_path, container, image="x/y:1")
    assert dict(only(lint(path)).fix) == {"livenessProbe": {"grpc": {"port": 9090}}}


def test_exec_probe_with_a_binary_the_lab_image_lacks(tmp_path: Path) -> None:
    command = "[curl, -f, http://localhost:8080/healthz]"
    path = write(tmp_path, f"      livenessProbe:\n        exec:\n          command: {command}\n")
    finding = only(lint(path))
    assert finding.field == "livenessProbe.exec.command" and "curl" in finding.message


def test_a_known_startup_time_checks_other_images(tmp_path: Path) -> None:
    path = write(tmp_path, "      livenessProbe: {httpGet: {port: 80}, periodSeconds: 5, "
                           "failureThreshold: 3}\n", image="nginx:1")  # fmt: skip
    assert lint(path) == []
    assert only(lint(path, startup_time=60)).field == "startupProbe"


def test_cli_exit_codes_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    bad, good = MANIFESTS / "fastapi-liveness-bad.yaml", MANIFESTS / "fastapi-liveness-good.yaml"
    assert main(["lint", str(good)]) == 0
    assert main(["lint", str(bad), str(good)]) == 1
    out = capsys.readouterr().out
    assert "1 finding(s), 1 error(s)" in out
    assert main(["lint", "--format", "json", str(bad)]) == 1
    (finding,) = json.loads(capsys.readouterr().out)
    assert finding["field"] == "livenessProbe.httpGet.port"
    assert main(["lint", str(MANIFESTS / "fastapi-svc.yaml")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: Deployment\nmetadata: {name: d}\nspec: {}\n", "no mapping at spec.template"),
        ("kind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a, image: x}]\n",
         "has no liveness, readiness or startup probe"),
        ("{", "invalid YAML"),
    ],
)  # fmt: skip
def test_bad_input(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProbelabError, match=message):
        lint(path)
