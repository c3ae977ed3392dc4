"""Why a live pod keeps restarting: the seed's section 6 done by a tool.

It reads what a student would (``kubectl describe pod``: spec, status, restart count, last
state, events; ``kubectl logs --previous``) with read-only calls, then names the cause in
one sentence and the fix as a YAML patch of the pod's manifest. Causes, in the order they
are tried, from the probe failures kubelet reported (``prober.go`` event texts):

* refused on a port the container does not listen on (its ports and its logs): wrong port;
* refused on the right port, killed before the app ever listened: startup slower than the
  liveness (or startup probe) budget;
* an HTTP 4xx/3xx answer: a path the app does not serve as a health check;
* a 503 from a check that includes a dependency: liveness checks a dependency;
* timeouts (``context deadline exceeded``): the check answers slower than timeoutSeconds;
* an exec command that is not in the image;
* only readiness failing: not Ready, but never restarted;
* restarts without probe failures: the process exits by itself.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from probelab import kube
from probelab.errors import ProbelabError
from probelab.i18n import N_, _
from probelab.lint import lab_startup, startup_needed
from probelab.model import lab_app
from probelab.model.lab_app import is_lab_image
from probelab.model.probes import PROBE_KINDS, ProbeSettings, declared_ports, env_of
from probelab.model.probes import resolve_port as container_port

LOG_LINES = 200
_LISTENING = re.compile(
    r"(?:running|listening|serving|started)\b[^\n]*?(?:https?://)?[\w.\[\]:-]*:(\d{2,5})\b", re.I
)
_ACCESS = re.compile(r"\"GET (/\S*) HTTP/[\d.]+\" (\d{3})")
_REFUSED = re.compile(r":(\d+)(/\S*)?\"?: (?:dial tcp [^:]+:\d+: )?connect: connection refused")
_STATUS = re.compile(r"statuscode: (\d{3})")
_TIMEOUT = re.compile(r"context deadline exceeded|Client\.Timeout|i/o timeout|timed out", re.I)
_STATUS_MEANING = {
    401: N_("authentication required"),
    403: N_("forbidden: needs authentication"),
    404: N_("not found"),
}
_NOT_FOUND = re.compile(r"exec: \\?\"?([\w./-]+)\\?\"?: executable file not found")


@dataclass
class Cause:
    """The diagnosis: a kind, one sentence, and the manifest change that fixes it."""

    kind: str
    sentence: str
    container: str | None = None
    fix: dict[str, Any] = field(default_factory=dict)  # fields of the container to change

    def patch(self) -> str:
        """The fix as a patch of the pod manifest (strategic merge, containers by name)."""
        if not self.fix or self.container is None:
            return ""
        body = {"spec": {"containers": [{"name": self.container, **self.fix}]}}
        return yaml.safe_dump(body, sort_keys=False).rstrip()


@dataclass
class Evidence:
    """What `kubectl describe pod` and `kubectl logs --previous` show."""

    namespace: str
    name: str
    pod: dict[str, Any]  # the API object as plain data (camelCase keys)
    events: list[dict[str, Any]]
    previous_logs: dict[str, str]  # container -> text
    logs: dict[str, str]

    def containers(self) -> list[dict[str, Any]]:
        spec: list[dict[str, Any]] = self.pod["spec"]["containers"]
        return spec

    def status(self, container: str) -> dict[str, Any]:
        statuses = self.pod.get("status", {}).get("containerStatuses") or []
        return next((s for s in statuses if s.get("name") == container), {})

    def unhealthy(self, kind: str) -> list[str]:
        """Messages of this probe's failures, newest last."""
        prefix = f"{kind.capitalize()} probe"
        return [
            str(e.get("message", ""))
            for e in self.events
            if e.get("reason") == "Unhealthy" and str(e.get("message", "")).startswith(prefix)
        ]


def gather(api: client.ApiClient, namespace: str, name: str) -> Evidence:
    """Read-only: the pod, its events and its logs."""
    core = client.CoreV1Api(api)
    try:
        pod = kube.retry_transient(core.read_namespaced_pod)(name, namespace)
    except ApiException as error:
        if error.status == 404:
            raise ProbelabError(f"pod {namespace}/{name} not found") from None
        raise ProbelabError(f"cannot read pod {namespace}/{name}: {error.reason}") from None
    events = kube.retry_transient(core.list_namespaced_event)(
        namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=Pod"
    )
    data: dict[str, Any] = api.sanitize_for_serialization(pod)
    ordered = sorted(
        (api.sanitize_for_serialization(e) for e in events.items),
        key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""),
    )
    previous, current = {}, {}
    for container in data["spec"]["containers"]:
        cname = container["name"]
        current[cname] = kube.pod_logs(api, namespace, name, container=cname)
        restarts = next(
            (
                s.get("restartCount", 0)
                for s in data.get("status", {}).get("containerStatuses") or []
                if s.get("name") == cname
            ),
            0,
        )
        if restarts:
            previous[cname] = kube.pod_logs(api, namespace, name, container=cname, previous=True)
    return Evidence(namespace, name, data, ordered, previous, current)


def listening_ports(evidence: Evidence, container: Mapping[str, Any]) -> dict[int, list[str]]:
    """Where the container listens, and who says so: its logs, its ports, the lab image."""
    text = evidence.previous_logs.get(container["name"], "") + evidence.logs.get(
        container["name"], ""
    )
    said: dict[int, list[str]] = {}
    for port in sorted({int(p) for p in _LISTENING.findall(text)}):
        said.setdefault(port, []).append(_("its logs"))
    for port in sorted(declared_ports(container)):
        said.setdefault(port, []).append(_("its ports"))
    if not said and is_lab_image(str(container.get("image", ""))):
        said[lab_app.PORT] = [_("the lab image")]
    return said


def diagnose(evidence: Evidence) -> Cause:
    """The most specific cause the evidence supports."""
    for container in evidence.containers():
        cause = _container_cause(evidence, container)
        if cause is not None:
            return cause
    waiting = [
        evidence.status(c["name"]).get("state", {}).get("waiting", {}).get("reason")
        for c in evidence.containers()
    ]
    pulling = next((w for w in waiting if w in ("ErrImagePull", "ImagePullBackOff")), None)
    if pulling:
        return Cause(
            "image",
            _("the image cannot be pulled ({reason}): not a probe problem; see events").format(
                reason=pulling
            ),
        )
    return Cause("healthy", _("no probe problem found: no probe failures and no restarts"))


def _container_cause(evidence: Evidence, container: Mapping[str, Any]) -> Cause | None:
    name = str(container["name"])
    killed = " ".join(
        str(e.get("message", ""))
        for e in evidence.events
        if e.get("reason") == "Killing" and f"container {name} " in f"{e.get('message')} ".lower()
    )
    for kind in ("startup", "liveness"):
        probe = container.get(f"{kind}Probe")
        failures = evidence.unhealthy(kind)
        if probe and failures and f"failed {kind} probe" in killed:
            return _probe_cause(evidence, container, kind, probe, failures[-1])
    status = evidence.status(name)
    restarts = int(status.get("restartCount", 0))
    readiness = evidence.unhealthy("readiness")
    if readiness and container.get("readinessProbe") and not status.get("ready"):
        probe = container["readinessProbe"]
        cause = _probe_cause(evidence, container, "readiness", probe, readiness[-1])
        cause.sentence += _("; it is only taken out of Service endpoints, never restarted")
        return cause
    if restarts:
        last = status.get("lastState", {}).get("terminated", {})
        return Cause(
            "exits",
            _(
                "container {name} exits by itself ({reason}, exit code {code}) with no probe "
                "failing: not a probe problem; see its logs --previous"
            ).format(
                name=name, reason=last.get("reason", "terminated"), code=last.get("exitCode", "?")
            ),
            name,
        )
    return None


def _probe_cause(
    evidence: Evidence,
    container: Mapping[str, Any],
    kind: str,
    probe: Mapping[str, Any],
    message: str,
) -> Cause:
    name = str(container["name"])
    field_ = f"{kind}Probe"
    what = _("the {kind} probe of container {name}").format(kind=kind, name=name)
    handler = next((h for h in ("httpGet", "tcpSocket", "grpc", "exec") if h in probe), "")
    spec = probe.get(handler) or {}
    target = container_port(container, spec.get("port")) if handler != "exec" else None
    refused = _REFUSED.search(message)
    if refused or "connection refused" in message:
        port = int(refused.group(1)) if refused else target
        listening = listening_ports(evidence, container)
        if port is not None and listening and port not in listening:
            consequence = (
                _("keeps it out of Service endpoints")
                if kind == "readiness"
                else _("restarts a healthy container")
            )
            right, sources = max(listening.items(), key=lambda item: len(item[1]))
            return Cause(
                "wrong-port",
                _(
                    "{what} targets port {port}, but the container listens on {right} according "
                    "to {sources}: every probe is refused, so kubelet {consequence}"
                ).format(
                    what=what,
                    port=port,
                    right=right,
                    sources=_(" and ").join(sources),
                    consequence=consequence,
                ),
                name,
                {field_: {handler: {"port": right}}},
            )
        if kind == "readiness":
            return Cause(
                "starting",
                _("{what} is refused on port {port}: the app is not listening yet").format(
                    what=what, port=port
                ),
                name,
            )
        return _slow_start(evidence, container, kind, probe)
    status = _STATUS.search(message)
    if status:
        return _status_cause(evidence, container, kind, spec, int(status.group(1)))
    if _TIMEOUT.search(message):
        timeout = int(probe.get("timeoutSeconds", 1))
        delay = float(env_of(container).get("HEALTH_DELAY", "0") or 0)
        needed = math.ceil(delay) + 1 if delay else timeout * 3
        path = spec.get("path", "")
        return Cause(
            "timeout",
            (
                _(
                    "{what} gives up after {timeout}s (timeoutSeconds), but {path} answers "
                    "later (about {delay}s): each probe times out and counts as a failure"
                )
                if delay
                else _(
                    "{what} gives up after {timeout}s (timeoutSeconds), but {path} answers "
                    "later: each probe times out and counts as a failure"
                )
            ).format(what=what, timeout=timeout, path=path or _("the check"), delay=f"{delay:g}"),
            name,
            {field_: {"timeoutSeconds": needed}},
        )
    missing = _NOT_FOUND.search(message)
    if missing:
        return Cause(
            "exec-missing",
            _("{what} runs {command}, which the image does not have").format(
                what=what, command=missing.group(1)
            ),
            name,
            {field_: {"exec": {"command": ["<a command the image has>"]}}},
        )
    return Cause(
        "probe-fails", _("{what} fails: {message}").format(what=what, message=message), name
    )


def _status_cause(
    evidence: Evidence,
    container: Mapping[str, Any],
    kind: str,
    spec: Mapping[str, Any],
    status: int,
) -> Cause:
    name = str(container["name"])
    path = str(spec.get("path", "/"))
    what = _("the {kind} probe of container {name}").format(kind=kind, name=name)
    env = env_of(container)
    readiness_path = (container.get("readinessProbe") or {}).get("httpGet", {}).get("path")
    dependency = env.get("READY_DEPENDENCY_URL")
    if status == 503 and kind == "readiness" and dependency:
        return Cause(
            "dependency-down",
            _(
                "{what} gets 503 from {path} because its dependency ({dependency}) is down: "
                "readiness doing its job"
            ).format(what=what, path=path, dependency=dependency),
            name,
        )
    if status == 503 and kind != "readiness" and (dependency or path == readiness_path):
        on = f" ({dependency})" if dependency else ""
        return Cause(
            "dependency",
            _(
                "{what} checks {path}, which answers 503 while its dependency{on} is down: "
                "restarting this container cannot bring the dependency back"
            ).format(what=what, path=path, on=on),
            name,
            {f"{kind}Probe": {"httpGet": {"path": _healthy_path(evidence, container, path)}}},
        )
    if kind == "readiness":
        return Cause(
            "not-ready",
            _("{what} gets HTTP {status} from {path}, so the pod is not Ready").format(
                what=what, status=status, path=path
            ),
            name,
            {} if status >= 500 else {"readinessProbe": {"httpGet": {"path": lab_app.READY_PATH}}},
        )
    if status >= 500:
        return Cause(
            "unhealthy",
            _(
                "{what} gets HTTP {status} from {path}: the app reports itself unhealthy, and "
                "kubelet restarts it as designed; logs --previous show why it failed"
            ).format(what=what, status=status, path=path),
            name,
        )
    meaning = _(_STATUS_MEANING.get(status, N_("not a success")))
    return Cause(
        "wrong-path",
        _(
            "{what} GETs {path}, which answers {status} ({meaning}), so kubelet counts a "
            "healthy app as failing"
        ).format(what=what, path=path, status=status, meaning=meaning),
        name,
        {f"{kind}Probe": {"httpGet": {"path": _healthy_path(evidence, container, path)}}},
    )


def _healthy_path(evidence: Evidence, container: Mapping[str, Any], wrong: str) -> str:
    """A path that answers 200 without dependencies: the lab's /healthz, else one seen."""
    if is_lab_image(str(container.get("image", ""))):
        return lab_app.HEALTH_PATH
    text = evidence.previous_logs.get(container["name"], "") + evidence.logs.get(
        container["name"], ""
    )
    good = [p for p, s in _ACCESS.findall(text) if s == "200" and p != wrong]
    return next((p for p in good if "health" in p or "live" in p), lab_app.HEALTH_PATH)


def _slow_start(
    evidence: Evidence, container: Mapping[str, Any], kind: str, probe: Mapping[str, Any]
) -> Cause:
    """Refused on the right port: the app was not listening yet when the probe gave up."""
    name = str(container["name"])
    settings = ProbeSettings.of(probe)
    budget = settings.initial_delay + settings.failure_threshold * settings.period
    known = lab_startup(container)
    ran = _last_run(evidence, name)
    needed = startup_needed(known) if known else math.ceil(max((ran or budget) * 2, 30))
    needs = _(" while the app needs about {known}s").format(known=f"{known:.0f}") if known else ""
    killed = (
        _("; it ran {ran}s and was killed before it ever listened").format(ran=f"{ran:.0f}")
        if ran
        else _("; it was killed before it ever listened")
    )
    if kind == "startup":
        return Cause(
            "startup-budget",
            _("the startup probe of container {name} allows {budget}s").format(
                name=name, budget=budget
            )
            + needs
            + killed,
            name,
            {"startupProbe": {"failureThreshold": -(-needed // settings.period)}},
        )
    handler = next(h for h in ("httpGet", "tcpSocket", "grpc", "exec") if h in probe)
    return Cause(
        "slow-start",
        _(
            "startup is slower than the liveness budget of container {name}: liveness gives "
            "up after about {budget}s"
        ).format(name=name, budget=budget)
        + needs
        + killed
        + _("; a startupProbe holds liveness back until the app answers"),
        name,
        {
            "startupProbe": {
                handler: dict(probe[handler]),
                "periodSeconds": 2,
                "failureThreshold": -(-needed // 2),
            }
        },
    )


def _last_run(evidence: Evidence, container: str) -> float | None:
    last = evidence.status(container).get("lastState", {}).get("terminated") or {}
    started, finished = last.get("startedAt"), last.get("finishedAt")
    if not started or not finished:
        return None
    return (_time(finished) - _time(started)).total_seconds()


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def report(evidence: Evidence, cause: Cause) -> str:
    """The text a student would have pieced together from describe, get and logs."""
    lines = [f"pod {evidence.namespace}/{evidence.name}", "", _("spec")]
    for container in evidence.containers():
        ports = ", ".join(map(str, sorted(declared_ports(container)))) or _("none declared")
        lines.append(f"  {container['name']}: image {container.get('image')}, ports {ports}")
        for kind in PROBE_KINDS:
            probe = container.get(f"{kind}Probe")
            if probe:
                lines.append(f"    {kind}: {_describe_probe(probe)}")
    status = evidence.pod.get("status", {})
    ready = next(
        (c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"),
        "Unknown",
    )
    lines += ["", _("status"), f"  phase {status.get('phase')}, Ready {ready}"]
    for container in evidence.containers():
        s = evidence.status(container["name"])
        state = next(iter(s.get("state") or {}), "unknown")
        reason = (s.get("state") or {}).get(state, {}).get("reason")
        last = (s.get("lastState") or {}).get("terminated")
        lines.append(
            f"  {container['name']}: restartCount {s.get('restartCount', 0)}, state {state}"
            + (f" ({reason})" if reason else "")
            + (
                f", last state terminated ({last.get('reason')}, exit code "
                f"{last.get('exitCode')}, {last.get('startedAt')} .. {last.get('finishedAt')})"
                if last
                else ""
            )
        )
    lines += ["", _("events")]
    for event in evidence.events:
        count = event.get("count") or 1
        lines.append(
            f"  {event.get('type')} {event.get('reason')} (x{count}): "
            + " ".join(str(event.get("message", "")).split())
        )
    for name, text in evidence.previous_logs.items():
        tail = text.strip().splitlines()[-10:]
        lines += [
            "",
            _("logs --previous ({name}, last {count} lines)").format(name=name, count=len(tail)),
        ]
        lines += [f"  {line}" for line in tail]
    lines += ["", _("cause"), f"  {cause.sentence}"]
    patch = cause.patch()
    if patch:
        lines += ["", _("fix (patch of the pod's manifest)")]
        lines += [f"  {line}" for line in patch.splitlines()]
    return "\n".join(lines)


def _describe_probe(probe: Mapping[str, Any]) -> str:
    """Like describe's ``http-get http://:8000/healthz delay=3s timeout=1s period=5s``."""
    settings = ProbeSettings.of(probe)
    if "httpGet" in probe:
        get = probe["httpGet"]
        target = f"http-get http://:{get.get('port')}{get.get('path', '/')}"
    elif "tcpSocket" in probe:
        target = f"tcp-socket :{probe['tcpSocket'].get('port')}"
    elif "grpc" in probe:
        target = f"grpc <pod>:{probe['grpc'].get('port')}"
    else:
        target = "exec " + str((probe.get("exec") or {}).get("command"))
    return (
        f"{target} delay={settings.initial_delay}s timeout={settings.timeout}s "
        f"period={settings.period}s #success={settings.success_threshold} "
        f"#failure={settings.failure_threshold}"
    )
