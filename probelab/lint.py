"""The probe checks that matter, read from a manifest: each finding names the field and
the fix.

Structural checks hold for any image: a probe port the container does not expose (by
number or name), a gRPC probe on a named port, liveness identical to readiness, and with a
known startup time (``--startup-time``) a liveness or startup budget shorter than it. For
the lab image the app is known (:class:`probelab.model.app.App`), so every probe is also
played against it: a path it does not serve, a timeout shorter than its health check, a
command its image lacks, a liveness check that includes a dependency, a slow start
without a ``startupProbe``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from probelab.i18n import N_, _
from probelab.model.app import App, probe_outcome
from probelab.model.lab_app import HEALTH_PATH, PORT, READY_PATH, is_lab_image
from probelab.model.node import Latencies, Node
from probelab.model.probes import (
    HANDLERS,
    ProbeSettings,
    container_probes,
    declared_ports,
    env_of,
)
from probelab.model.probes import resolve_port as container_port
from probelab.predict import read_pods

STARTUP_MARGIN = 1.5  # a startup budget should cover the known startup this many times
SEVERITIES = {"error": N_("error"), "warning": N_("warning")}  # as shown; JSON keeps the key


@dataclass(frozen=True)
class Finding:
    """One problem: where, what, and the manifest change that fixes it."""

    severity: str  # "error" or "warning"
    where: str  # "path: Pod/name container app"
    field: str  # "livenessProbe.httpGet.port"
    message: str
    fix: Mapping[str, Any]  # a fragment of the container, to merge into it

    def render(self) -> str:
        fix = yaml.safe_dump(dict(self.fix), default_flow_style=True, width=1000).strip()
        severity = _(SEVERITIES[self.severity])
        return _("{where}: {severity}: {field}: {message}; fix: {fix}").format(
            where=self.where, severity=severity, field=self.field, message=self.message, fix=fix
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "where": self.where,
            "field": self.field,
            "message": self.message,
            "fix": dict(self.fix),
        }


def lint(path: Path, *, startup_time: float | None = None) -> list[Finding]:
    """Every finding for every container of every pod in the manifest."""
    return [
        finding
        for pod in read_pods(path)
        for container in pod.spec["containers"]
        for finding in check_container(
            container, where=f"{path}: {pod.source}", startup_time=startup_time
        )
    ]


def check_container(
    container: Mapping[str, Any], *, where: str, startup_time: float | None = None
) -> list[Finding]:
    """The findings for one container's probes."""
    name = str(container.get("name", ""))
    checker = _Checker(_("{where} container {name}").format(where=where, name=name), container)
    checker.structure()
    if is_lab_image(str(container.get("image", ""))):
        checker.lab_app()
    known = startup_time if startup_time is not None else lab_startup(container)
    if known is not None:
        checker.budget(known)
    return checker.findings


class _Checker:
    def __init__(self, where: str, container: Mapping[str, Any]) -> None:
        self.where = where
        self.container = container
        self.probes = container_probes(container)
        self.findings: list[Finding] = []
        self.flagged: set[str] = set()  # probe kinds already found failing for good

    def add(
        self, severity: str, kind: str, field: str, message: str, fix: Mapping[str, Any]
    ) -> None:
        self.flagged.add(kind)
        self.findings.append(
            Finding(severity, self.where, f"{kind}Probe.{field}", message, {f"{kind}Probe": fix})
        )

    # any image ---------------------------------------------------------------------
    def structure(self) -> None:
        declared = sorted(declared_ports(self.container))
        only = declared[0] if len(declared) == 1 else None
        for kind, probe in self.probes.items():
            handler = next((h for h in HANDLERS if isinstance(probe.get(h), Mapping)), None)
            if handler is None:
                self.add("error", kind, "handler", _("no httpGet, tcpSocket, grpc or exec"), {})
                continue
            port = probe[handler].get("port")
            if handler == "grpc" and not isinstance(port, int):
                number = container_port(self.container, port)
                self.add(
                    "error",
                    kind,
                    "grpc.port",
                    _("gRPC probes take a port number, not the name {port!r}").format(port=port),
                    {"grpc": {"port": number if number is not None else only or 0}},
                )
            elif handler in ("httpGet", "tcpSocket"):
                self._port(kind, handler, port, declared, only)
        self._same_liveness_and_readiness()

    def _port(
        self, kind: str, handler: str, port: object, declared: list[int], only: int | None
    ) -> None:
        number = container_port(self.container, port)
        field = f"{handler}.port"
        fix = {handler: {"port": only}} if only is not None else {handler: {"port": "<port>"}}
        if number is None:
            names = [p.get("name") for p in self.container.get("ports") or [] if p.get("name")]
            self.add(
                "error",
                kind,
                field,
                _("no containerPort is named {port!r} (named: {names})").format(
                    port=port, names=", ".join(names) or _("none")
                ),
                fix,
            )
        elif declared and number not in declared:
            exposed = ", ".join(map(str, declared))
            message = _("{number} is not a containerPort ({exposed})")
            self.add("error", kind, field, message.format(number=number, exposed=exposed), fix)

    def _same_liveness_and_readiness(self) -> None:
        liveness, readiness = self.probes.get("liveness"), self.probes.get("readiness")
        if liveness is None or readiness is None:
            return
        if _handler(liveness) == _handler(readiness):
            self.findings.append(
                Finding(
                    "warning",
                    self.where,
                    "livenessProbe",
                    _(
                        "liveness is the same check as readiness: if that check includes a "
                        "dependency, its outage restarts this container"
                    ),
                    {"livenessProbe": {"httpGet": {"path": HEALTH_PATH}}},
                )
            )

    # the lab app -------------------------------------------------------------------
    def lab_app(self) -> None:
        env = env_of(self.container)
        app = App.lab(self.container, Latencies(Node()))
        steady = app.boot + 1.0  # booted, before any health failure the knobs schedule
        for kind, probe in self.probes.items():
            if kind in self.flagged:
                continue
            outcome = probe_outcome(probe, self.container, app, steady)
            if not outcome.ok:
                self._explain(kind, probe, outcome.why, env)
        liveness = self.probes.get("liveness")
        dependency = env.get("READY_DEPENDENCY_URL")
        path = _handler(liveness)[1].get("path") if liveness else None
        if dependency and path == app.ready_path and "liveness" not in self.flagged:
            self.add(
                "error",
                "liveness",
                "httpGet.path",
                _(
                    "{path} checks the dependency {dependency}: its outage would restart this "
                    "container, which cannot bring it back"
                ).format(path=path, dependency=dependency),
                {"httpGet": {"path": HEALTH_PATH}},
            )

    def _explain(self, kind: str, probe: Mapping[str, Any], why: str, env: dict[str, str]) -> None:
        handler, spec = _handler(probe)
        if why.startswith("connection refused"):
            self.add(
                "error",
                kind,
                f"{handler}.port",
                _("{why}: the lab app listens on {port} only").format(why=why, port=PORT),
                {handler: {"port": PORT}},
            )
        elif why.startswith("timeout"):
            delay = float(env.get("HEALTH_DELAY", "0"))
            self.add(
                "error",
                kind,
                "timeoutSeconds",
                _("{why}, longer than timeoutSeconds {timeout}: every probe times out").format(
                    why=why, timeout=probe.get("timeoutSeconds", 1)
                ),
                {"timeoutSeconds": math.ceil(delay) + 1},
            )
        elif "executable file not found" in why:
            self.add(
                "error",
                kind,
                "exec.command",
                _("{why} in the lab image").format(why=why),
                {"exec": {"command": ["python3", "-c", _PYTHON_GET]}},
            )
        elif why.startswith("HTTP 503") and spec.get("path") == READY_PATH:
            if kind == "readiness":
                return  # readiness is where a dependency belongs
            self.add(
                "error",
                kind,
                f"{handler}.path",
                _("{why}: its dependency {dependency} does not answer").format(
                    why=why, dependency=env.get("READY_DEPENDENCY_URL")
                ),
                {handler: {"path": HEALTH_PATH}},
            )
        elif why.startswith("HTTP 5"):
            return  # the app's own knobs make it unhealthy: a runtime story, not a typo
        elif why.startswith("HTTP"):
            target = READY_PATH if kind == "readiness" else HEALTH_PATH
            self.add(
                "error",
                kind,
                f"{handler}.path",
                _("{why}: the lab app serves {target} for this").format(why=why, target=target),
                {handler: {"path": target}},
            )
        else:
            self.add("error", kind, handler, why, {})

    # a known startup time ---------------------------------------------------------
    def budget(self, startup: float) -> None:
        liveness, start = self.probes.get("liveness"), self.probes.get("startup")
        needed = startup_needed(startup)
        if start is not None:
            settings = ProbeSettings.of(start)
            budget = settings.initial_delay + settings.failure_threshold * settings.period
            if budget < startup and "startup" not in self.flagged:
                self.add(
                    "error",
                    "startup",
                    "failureThreshold",
                    _(
                        "the startup budget ({budget}s: initialDelaySeconds + failureThreshold x "
                        "periodSeconds) is shorter than the app's {startup}s startup"
                    ).format(budget=budget, startup=f"{startup:g}"),
                    {"failureThreshold": math.ceil(needed / settings.period)},
                )
            return
        if liveness is None or "liveness" in self.flagged:
            return
        earliest = ProbeSettings.of(liveness).earliest_failure_verdict()
        patch = {"startupProbe": _startup_probe(liveness, needed)}
        if earliest < startup:
            self.findings.append(
                Finding(
                    "error",
                    self.where,
                    "startupProbe",
                    _(
                        "liveness can kill the app {earliest}s after it starts, before its "
                        "{startup}s startup ends; a startupProbe holds liveness back"
                    ).format(earliest=f"{earliest:g}", startup=f"{startup:g}"),
                    patch,
                )
            )
        else:
            self.findings.append(
                Finding(
                    "warning",
                    self.where,
                    "startupProbe",
                    _(
                        "the app takes {startup}s to start and only initialDelaySeconds covers "
                        "it; a startupProbe waits exactly as long as needed"
                    ).format(startup=f"{startup:g}"),
                    patch,
                )
            )


_PYTHON_GET = (
    f"import urllib.request as u; u.urlopen('http://127.0.0.1:{PORT}{HEALTH_PATH}', timeout=1)"
)


def lab_startup(container: Mapping[str, Any]) -> float | None:
    """How long the lab app takes to answer, from its knobs (None: not a slow start)."""
    if not is_lab_image(str(container.get("image", ""))):
        return None
    app = App.lab(container, Latencies(Node()))
    return app.boot if app.boot > Node().app_boot else None


def startup_needed(startup: float) -> int:
    """The startup budget to ask for, in whole seconds: the known startup with a margin."""
    return math.ceil(startup * STARTUP_MARGIN)


def _handler(probe: Mapping[str, Any] | None) -> tuple[str, Mapping[str, Any]]:
    for name in HANDLERS:
        if probe is not None and isinstance(probe.get(name), Mapping):
            return name, probe[name]
    return "", {}


def _startup_probe(liveness: Mapping[str, Any], needed: int) -> dict[str, Any]:
    """A startupProbe with liveness's check and a budget of ``needed`` seconds."""
    name, spec = _handler(liveness)
    period = 2 if needed <= 60 else 5
    return {name: dict(spec), "periodSeconds": period, "failureThreshold": -(-needed // period)}


def errors(findings: Iterator[Finding] | list[Finding]) -> int:
    return sum(1 for f in findings if f.severity == "error")
