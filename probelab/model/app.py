"""What a container's process does, as far as its probes can tell.

The lab image is read from its knobs (:mod:`.lab_app`) and its command line; any other
image is an :class:`App` described by the caller. Whatever the model cannot know (an exec
command it cannot read, an image that is not the lab's and was not described, an env value
from a Secret) is written down as an assumption rather than guessed silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from probelab.model import lab_app
from probelab.model.argv import read_exec, uvicorn_port
from probelab.model.errors import ModelError
from probelab.model.node import Latencies
from probelab.model.probes import (
    ProbeSettings,
    container_probes,
    declared_ports,
    env_of,
    handler_of,
    resolve_port,
)


@dataclass(frozen=True)
class Outcome:
    """One probe's result and how long it took; ``ok`` None is a probe *error* (kubelet
    discards the result: it counts neither way)."""

    ok: bool | None
    duration: float
    why: str
    busy: float = 0.0  # how long the app keeps handling it (past a timeout, too)


@dataclass(frozen=True)
class App:
    """What a container's process does. Times are seconds since the container started."""

    listens: frozenset[int] | None = None  # None: whatever the container declares
    boot: float = 0.0  # until the port accepts connections
    born: float = 0.0  # when the app's own clock starts (fail_after counts from it)
    statuses: Mapping[str, int] = field(default_factory=dict)  # path -> HTTP status
    default_status: int = 200
    health_path: str | None = None  # where fail_after and health_delay apply
    fail_after: float | None = None
    health_delay: float = 0.0
    ready_path: str | None = None  # answers 503 when ready_ok is false
    ready_ok: bool = True
    ready_fails_from: float | None = None  # the ready path answers 503 from then on
    missing: frozenset[str] = frozenset()  # executables exec probes cannot run
    exec_ok: bool = True  # exec commands the model cannot read
    grpc_ok: bool = False
    ignores_sigterm: bool = False
    stops_after_boot: bool = False  # SIGTERM while booting: it exits when the boot ends
    abort: float = 0.05
    warm: float = 0.0  # a restarted instance boots this much faster
    drains: bool = False  # SIGTERM waits for requests in flight
    exits_after: float | None = None
    exec_duration: float = 0.1
    assumptions: tuple[str, ...] = ()

    @classmethod
    def lab(cls, container: Mapping[str, Any], latency: Latencies) -> App:
        """The lab image: uvicorn on 8080 (or its command's ``--port``), its knobs."""
        env = env_of(container)
        assumptions = [
            f"env {e['name']} comes from valueFrom; assumed unset"
            for e in container.get("env") or []
            if isinstance(e, Mapping) and e.get("name") in lab_app.KNOBS and "value" not in e
        ]
        slow = env.get(lab_app.SLOW_START) == "1"
        sleep = _seconds(env, lab_app.STARTUP_SLEEP) if slow else 0.0
        dependency = env.get(lab_app.READY_DEPENDENCY_URL, "").strip()
        up, note = _lab_dependency(dependency)
        if note:
            assumptions.append(note)
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        port = uvicorn_port(argv) or lab_app.PORT
        boot, reboot = latency("app_boot"), latency("app_reboot")
        return cls(
            listens=frozenset({port}),
            boot=boot + sleep,
            born=boot - lab_app.CLOCK_LEAD,
            warm=max(boot - reboot, 0.0),
            statuses=lab_app.STATUSES,
            default_status=lab_app.OTHER_STATUS,
            health_path=lab_app.HEALTH_PATH,
            fail_after=_seconds(env, lab_app.HEALTH_FAIL_AFTER, None),
            health_delay=_seconds(env, lab_app.HEALTH_DELAY),
            ready_path=lab_app.READY_PATH,
            ready_ok=up,
            missing=lab_app.MISSING_EXECUTABLES,
            stops_after_boot=True,  # uvicorn handles signals only after its startup
            drains=True,  # uvicorn's graceful shutdown waits for running requests
            exec_duration=latency("app_exec"),
            ignores_sigterm=env.get(lab_app.IGNORE_SIGTERM) == "1",
            assumptions=tuple(assumptions),
        )

    def http(self, port: int, path: str, age: float, timeout: float) -> Outcome:
        """An HTTP GET to a port that accepts connections: 200-399 passes, late fails."""
        path = path or "/"
        delay = self.health_delay if path == self.health_path else 0.0
        if delay >= timeout:
            return Outcome(False, float(timeout), f"timeout: :{port}{path} took {delay:g}s", delay)
        status = self.statuses.get(path, self.default_status)
        failing = self.fail_after is not None and age >= self.born + self.fail_after
        if path == self.health_path and failing:
            status = 500
        dependency_gone = self.ready_fails_from is not None and age >= self.ready_fails_from
        if path == self.ready_path and (not self.ready_ok or dependency_gone):
            status = 503
        return Outcome(200 <= status < 400, delay, f"HTTP {status} from :{port}{path}", delay)

    def serves(self, port: int, age: float, declared: frozenset[int] = frozenset()) -> bool:
        """Accepts connections on ``port``; an app of unknown ports listens on the declared
        ones, or on any port when the container declares none."""
        ports = self.listens if self.listens is not None else declared
        return (port in ports or not ports) and age >= self.boot


def _seconds(env: Mapping[str, str], name: str, default: float | None = 0.0) -> Any:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ModelError(f"env {name} must be a number of seconds, got {raw!r}") from None
    if not 0 <= value <= 86_400:
        raise ModelError(f"env {name} must be between 0 and 86400 seconds, got {raw!r}")
    return value


def _lab_dependency(url: str) -> tuple[bool, str]:
    """A dependency on the pod's loopback is known (the app serves only its own paths);
    anything else is assumed up, and said so."""
    if not url:
        return True, ""
    parts = urlsplit(url)
    if parts.hostname in ("127.0.0.1", "localhost", "::1"):
        own = (parts.port or 80) == lab_app.PORT and parts.path in lab_app.STATUSES
        return own and lab_app.STATUSES[parts.path] < 400, ""
    return True, f"readiness dependency {url} assumed up (--dependency-down says otherwise)"


def with_overrides(app: App, **overrides: Any) -> App:
    """The app with fields the user described replaced."""
    return replace(app, **overrides) if overrides else app


def assumptions_of(container: Mapping[str, Any], app: App) -> list[str]:
    """What the model had to assume about this container's probes."""
    notes = list(app.assumptions)
    for kind, probe in container_probes(container).items():
        if handler_of(probe) != "exec":
            continue
        command = (probe.get("exec") or {}).get("command") or []
        reading = read_exec(command, app.missing)
        if reading.kind == "unknown":
            verdict = "succeeds" if app.exec_ok else "fails"
            notes.append(
                f"{kind} exec command {_quoted(command)} cannot be read; assumed it {verdict} "
                f"in {app.exec_duration:g}s (--exec-fails says otherwise)"
            )
    return notes


def _quoted(command: Sequence[object]) -> str:
    text = " ".join(str(w) for w in command)
    return repr(text if len(text) <= 60 else text[:57] + "...")


def probe_outcome(
    probe: Mapping[str, Any], container: Mapping[str, Any], app: App, age: float
) -> Outcome:
    """One probe against ``app`` at ``age`` seconds after the container started."""
    timeout = float(ProbeSettings.of(probe).timeout)
    declared = declared_ports(container)
    handler = handler_of(probe)
    spec = probe[handler]
    if handler in ("httpGet", "tcpSocket"):
        port = resolve_port(container, spec.get("port"))
        if port is None:
            return Outcome(None, 0.0, f"errored: no port named {spec.get('port')!r}")
        if not app.serves(port, age, declared):
            return Outcome(False, 0.0, f"connection refused on :{port}")
        if handler == "tcpSocket":
            return Outcome(True, 0.0, f"connected to :{port}")
        return app.http(port, str(spec.get("path") or "/"), age, timeout)
    if handler == "grpc":
        port = spec.get("port")
        if not isinstance(port, int) or not app.serves(port, age, declared):
            return Outcome(False, 0.0, f"connection refused on :{port}")
        return Outcome(app.grpc_ok, 0.0, "gRPC health " + ("SERVING" if app.grpc_ok else "failed"))
    return _exec_outcome(spec.get("command") or [], app, age, timeout, declared)


def _exec_outcome(
    command: Sequence[Any], app: App, age: float, timeout: float, declared: frozenset[int]
) -> Outcome:
    """An exec probe, bounded by kubelet's exec timeout (timeoutSeconds)."""
    reading = read_exec(command, app.missing)
    cost = app.exec_duration
    if reading.kind == "missing":
        return Outcome(False, cost, f"{reading.program}: executable file not found")
    if reading.kind == "sleep":
        took = cost + reading.seconds
        if took >= timeout:  # the command runs beside the app, which does not wait for it
            return Outcome(False, timeout, f"command timed out after {timeout:g}s")
        return Outcome(True, took, "command succeeded")
    if reading.kind == "exits":
        return Outcome(reading.code == 0, cost, f"command exited {reading.code}")
    if reading.kind == "get":
        if not app.serves(reading.port, age, declared):
            return Outcome(False, cost, f"connection refused on :{reading.port}")
        answer = app.http(reading.port, reading.path, age, timeout)
        return Outcome(answer.ok, cost + answer.duration, answer.why, cost + answer.busy)
    return Outcome(app.exec_ok, cost, "command " + ("succeeded" if app.exec_ok else "failed"))


def app_for(*, other: App | None = None, **overrides: Any) -> Any:
    """Chooses each container's App: the lab image from its knobs, ``other`` (default: an
    app that serves its declared ports at once, 200 everywhere) for the rest; ``overrides``
    (what the user described) replace fields of both."""

    def choose(container: Mapping[str, Any], latency: Latencies) -> App:
        image = str(container.get("image", ""))
        if lab_app.is_lab_image(image):
            app = App.lab(container, latency)
        elif other is not None:
            app = other
        else:
            described = not overrides
            notes = (
                (f"image {image!r} is not the lab's; assumed it serves its declared ports "
                 "at once with 200 on every path (--boot, --listens, --serves describe it)",)
                if described else ()
            )  # fmt: skip
            app = App(assumptions=notes)
        return with_overrides(app, **overrides)

    return choose
