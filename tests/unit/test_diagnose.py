"""diagnose's reasoning on evidence shaped like the API's (events as kubelet words them),
without a cluster; tests/integration/test_diagnose.py checks the same on real pods."""

from __future__ import annotations

from typing import Any

import pytest

from probelab.diagnose import Evidence, diagnose, listening_ports, report

LAB = "127.0.0.1:5443/fastapi-health:sha-0123"
UVICORN = "INFO:     Uvicorn running on http://0.0.0.0:8080 (Press CTRL+C to quit)\n"


def evidence(
    container: dict[str, Any],
    events: list[tuple[str, str]],
    *,
    restarts: int = 1,
    ready: bool = False,
    previous: str = UVICORN,
    state: dict[str, Any] | None = None,
) -> Evidence:
    container = {"name": "app", "image": LAB, **container}
    status = {
        "name": "app",
        "restartCount": restarts,
        "ready": ready,
        "state": state or {"running": {"startedAt": "2026-01-31T10:00:20Z"}},
        "lastState": {"terminated": {"reason": "Completed", "exitCode": 0,
                                     "startedAt": "2026-01-31T10:00:00Z",
                                     "finishedAt": "2026-01-31T10:00:10Z"}} if restarts else {},
    }  # fmt: skip
    pod = {
        "spec": {"containers": [container]},
        "status": {"phase": "Running", "containerStatuses": [status],
                   "conditions": [{"type": "Ready", "status": str(ready)}]},
    }  # fmt: skip
    return Evidence(
        "demo",
        "p",
        pod,
        [{"type": "Warning", "reason": r, "message": m, "count": 1} for r, m in events],
        {"app": previous} if restarts else {},
        {"app": ""},
    )


KILLED = ("Killing", "Container app failed liveness probe, will be restarted")


def refused(port: int, path: str = "/healthz") -> str:
    return (f'Liveness probe failed: Get "http://10.244.0.7:{port}{path}": dial tcp '
            f"10.244.0.7:{port}: connect: connection refused")  # fmt: skip


def liveness(**fields: Any) -> dict[str, Any]:
    return {"livenessProbe": {"periodSeconds": 5, "failureThreshold": 2, **fields}}


def test_wrong_port_from_ports_and_logs() -> None:
    container = {"ports": [{"containerPort": 8080}], **liveness(httpGet={"port": 8000})}
    cause = diagnose(evidence(container, [("Unhealthy", refused(8000)), KILLED]))
    assert cause.kind == "wrong-port"
    assert cause.sentence == (
        "the liveness probe of container app targets port 8000, but the container listens "
        "on 8080 according to its logs and its ports: every probe is refused, so kubelet "
        "restarts a healthy container"
    )
    assert cause.patch() == (
        "spec:\n  containers:\n  - name: app\n    livenessProbe:\n      httpGet:\n"
        "        port: 8080"
    )


def test_wrong_port_from_logs_alone_for_any_image() -> None:
    container = {"image": "example/api:1", **liveness(httpGet={"port": 80})}
    logs = "listening on 0.0.0.0:3000\n"
    cause = diagnose(evidence(container, [("Unhealthy", refused(80, "/")), KILLED], previous=logs))
    assert cause.kind == "wrong-port" and cause.fix == {
        "livenessProbe": {"httpGet": {"port": 3000}}
    }


def test_refused_on_the_right_port_is_a_slow_start() -> None:
    container = {
        "env": [{"name": "SLOW_START", "value": "1"}, {"name": "STARTUP_SLEEP", "value": "30"}],
        "ports": [{"containerPort": 8080}],
        **liveness(httpGet={"path": "/healthz", "port": 8080}),
    }
    cause = diagnose(evidence(container, [("Unhealthy", refused(8080)), KILLED], previous=""))
    assert cause.kind == "slow-start"
    assert cause.sentence.startswith(
        "startup is slower than the liveness budget of container app: liveness gives up "
        "after about 10s while the app needs about 31s; it ran 10s and was killed before"
    )
    startup = cause.fix["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 45


@pytest.mark.parametrize(
    ("status", "path", "kind"),
    [(403, "/admin", "wrong-path"), (404, "/health", "wrong-path"), (500, "/healthz", "unhealthy")],
)
def test_http_statuses(status: int, path: str, kind: str) -> None:
    message = f"Liveness probe failed: HTTP probe failed with statuscode: {status}"
    container = liveness(httpGet={"path": path, "port": 8080})
    cause = diagnose(evidence(container, [("Unhealthy", message), KILLED]))
    assert cause.kind == kind
    if kind == "wrong-path":
        assert cause.fix == {"livenessProbe": {"httpGet": {"path": "/healthz"}}}
        assert f"GETs {path}, which answers {status}" in cause.sentence


def test_a_dependency_in_liveness() -> None:
    container = {
        "env": [{"name": "READY_DEPENDENCY_URL", "value": "http://db/health"}],
        **liveness(httpGet={"path": "/ready", "port": 8080}),
    }
    message = "Liveness probe failed: HTTP probe failed with statuscode: 503"
    cause = diagnose(evidence(container, [("Unhealthy", message), KILLED]))
    assert cause.kind == "dependency" and "http://db/health" in cause.sentence


def test_timeouts() -> None:
    container = {
        "env": [{"name": "HEALTH_DELAY", "value": "2"}],
        **liveness(httpGet={"path": "/healthz", "port": 8080}, timeoutSeconds=1),
    }
    message = ('Liveness probe failed: Get "http://10.244.0.7:8080/healthz": context deadline '
               "exceeded (Client.Timeout exceeded while awaiting headers)")  # fmt: skip
    cause = diagnose(evidence(container, [("Unhealthy", message), KILLED]))
    assert cause.kind == "timeout"
    assert cause.fix == {"livenessProbe": {"timeoutSeconds": 3}}


def test_startup_probe_budget() -> None:
    container = {"startupProbe": {"httpGet": {"path": "/healthz", "port": 8080},
                                  "periodSeconds": 3, "failureThreshold": 4}}  # fmt: skip
    message = refused(8080).replace("Liveness", "Startup")
    killed = ("Killing", "Container app failed startup probe, will be restarted")
    cause = diagnose(evidence(container, [("Unhealthy", message), killed], previous=""))
    assert cause.kind == "startup-budget" and "allows 12s" in cause.sentence


def test_startup_failures_of_a_pod_that_then_started_are_no_cause() -> None:
    container = {"startupProbe": {"httpGet": {"path": "/healthz", "port": 8080}}}
    message = refused(8080).replace("Liveness", "Startup")
    cause = diagnose(evidence(container, [("Unhealthy", message)], restarts=0, ready=True))
    assert cause.kind == "healthy"


def test_readiness_only() -> None:
    container = {"readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}}}
    message = "Readiness probe failed: HTTP probe failed with statuscode: 500"
    cause = diagnose(evidence(container, [("Unhealthy", message)], restarts=0))
    assert cause.kind == "not-ready" and "never restarted" in cause.sentence


def test_restarts_without_probe_failures() -> None:
    state = {"waiting": {"reason": "CrashLoopBackOff"}}
    cause = diagnose(evidence(liveness(httpGet={"port": 8080}), [], restarts=3, state=state))
    assert cause.kind == "exits" and "exits by itself" in cause.sentence


def test_image_pull_is_not_a_probe_problem() -> None:
    state = {"waiting": {"reason": "ImagePullBackOff"}}
    cause = diagnose(evidence(liveness(httpGet={"port": 8080}), [], restarts=0, state=state))
    assert cause.kind == "image"


def test_listening_ports_say_who_said_so() -> None:
    seen = evidence({"ports": [{"containerPort": 9000}]}, [])
    assert listening_ports(seen, seen.containers()[0]) == {8080: ["its logs"],
                                                           9000: ["its ports"]}  # fmt: skip


def test_report_has_the_seeds_sections() -> None:
    container = {"ports": [{"containerPort": 8080}], **liveness(httpGet={"port": 8000})}
    seen = evidence(container, [("Unhealthy", refused(8000)), KILLED])
    text = report(seen, diagnose(seen))
    assert "    liveness: http-get http://:8000/ delay=0s timeout=1s period=5s" in text
    assert "restartCount 1" in text and "last state terminated (Completed, exit code 0" in text
    assert "Warning Killing (x1): Container app failed liveness probe" in text
    assert "logs --previous (app, last 1 lines)" in text
    assert text.splitlines()[-1] == "          port: 8080"
