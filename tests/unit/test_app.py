"""The lab app's endpoints and knobs, through FastAPI's in-process TestClient."""

from __future__ import annotations

import importlib.util
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import ModuleType

import pytest
from fastapi.testclient import TestClient

APP_FILE = Path(__file__).resolve().parents[2] / "app" / "main.py"


def _load_app_module() -> ModuleType:
    """app/ is not a package (it is the image's whole source), so load it by path."""
    spec = importlib.util.spec_from_file_location("probelab_lab_app", APP_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


lab = _load_app_module()


class FakeTime:
    """A clock the test moves by hand, and a sleep that only records and advances it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def client_for(env: dict[str, str], fake: FakeTime | None = None) -> TestClient:
    fake = fake or FakeTime()
    app = lab.create_app(lab.Settings.from_env(env), clock=fake.clock, sleep=fake.sleep)
    return TestClient(app)


def test_default_endpoints_answer_like_the_seed() -> None:
    with client_for({}) as client:
        assert client.get("/").json() == {"msg": "hello"}
        health = client.get("/healthz")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        ready = client.get("/ready")
        assert (ready.status_code, ready.json()) == (200, {"ready": True})


def test_admin_is_always_forbidden() -> None:
    with client_for({}) as client:
        assert client.get("/admin").status_code == 403


def test_slow_start_sleeps_in_startup_before_serving() -> None:
    fake = FakeTime()
    with client_for({"SLOW_START": "1", "STARTUP_SLEEP": "30"}, fake) as client:
        assert fake.slept == [30.0]
        assert client.get("/healthz").status_code == 200


def test_startup_sleep_without_slow_start_is_ignored_like_the_seed() -> None:
    fake = FakeTime()
    with client_for({"STARTUP_SLEEP": "30"}, fake):
        assert fake.slept == []


def test_health_fails_once_up_for_health_fail_after() -> None:
    fake = FakeTime()
    with client_for({"HEALTH_FAIL_AFTER": "20"}, fake) as client:
        fake.now += 19.5
        assert client.get("/healthz").status_code == 200
        fake.now += 0.5
        failing = client.get("/healthz")
        assert failing.status_code == 500
        assert client.get("/").status_code == 200  # only the health check is affected


def test_health_delay_waits_before_answering() -> None:
    fake = FakeTime()
    with client_for({"HEALTH_DELAY": "3.5"}, fake) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/").status_code == 200
        assert fake.slept == [3.5]


class _Dependency(BaseHTTPRequestHandler):
    """A stand-in dependency: /up answers 200, anything else 500."""

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/up" else 500)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture
def dependency() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Dependency)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_ready_follows_a_healthy_dependency(dependency: str) -> None:
    with client_for({"READY_DEPENDENCY_URL": f"{dependency}/up"}) as client:
        assert client.get("/ready").json() == {"ready": True}


def test_ready_is_503_when_the_dependency_errors(dependency: str) -> None:
    with client_for({"READY_DEPENDENCY_URL": f"{dependency}/down"}) as client:
        response = client.get("/ready")
        assert response.status_code == 503
        assert response.json()["ready"] is False


def test_ready_is_503_when_the_dependency_is_unreachable() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago refuses connections
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"READY_DEPENDENCY_URL": f"http://127.0.0.1:{port}/", "READY_DEPENDENCY_TIMEOUT": "0.5"}
    with client_for(env) as client:
        assert client.get("/ready").status_code == 503


def test_ready_is_503_when_the_dependency_does_not_answer_in_time() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        with client_for({"READY_DEPENDENCY_URL": url, "READY_DEPENDENCY_TIMEOUT": "0.2"}) as client:
            assert client.get("/ready").status_code == 503


def test_ignore_sigterm_is_applied_at_startup_before_the_slow_start() -> None:
    fake = FakeTime()
    calls: list[list[float]] = []
    settings = lab.Settings.from_env(
        {"IGNORE_SIGTERM": "1", "SLOW_START": "1", "STARTUP_SLEEP": "5"}
    )
    app = lab.create_app(
        settings,
        clock=fake.clock,
        sleep=fake.sleep,
        ignore_term=lambda: calls.append(fake.slept[:]),
    )
    with TestClient(app):
        assert calls == [[]]  # ignored before the startup sleep began
    assert "ignore_sigterm=True" in settings.describe()
    assert lab.Settings.from_env({"IGNORE_SIGTERM": "yes"}).ignore_sigterm is False


def test_settings_default_to_everything_off() -> None:
    assert lab.Settings.from_env({}) == lab.Settings()
    assert "health_fail_after=off" in lab.Settings().describe()


def test_settings_reject_bad_numbers_instead_of_silently_turning_off() -> None:
    with pytest.raises(ValueError, match="HEALTH_DELAY"):
        lab.Settings.from_env({"HEALTH_DELAY": "3s"})
    with pytest.raises(ValueError, match="negative"):
        lab.Settings.from_env({"HEALTH_FAIL_AFTER": "-1"})


def test_startup_log_line_names_every_knob(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="uvicorn.error")
    with client_for({"HEALTH_FAIL_AFTER": "0", "READY_DEPENDENCY_URL": "http://dep/"}):
        pass
    lines = [r.getMessage() for r in caplog.records if "probelab app config" in r.getMessage()]
    assert len(lines) == 1
    assert "health_fail_after=0.0" in lines[0]
    assert "ready_dependency_url=http://dep/" in lines[0]
    assert "startup_sleep=off" in lines[0]
