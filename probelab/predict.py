"""A model of kubelet: when probes tick, fail, kill, restart, back off and make a pod Ready.

``predict`` plays kubelet's rules forward, event by event, for every container of a pod
manifest (a Deployment's or other workload's pod template counts as one pod). What the
container's process does is an :class:`App`: the lab's own image is read from its
environment knobs (``app/main.py``), any other image is described with options. What the
node adds (how long a sandbox, a stop or a status update takes) is a :class:`Node`, whose
defaults were measured on the local cluster (``docs/predict.md``).

The rules, from kubelet v1.35's source (each cited where it is used):

* ``pkg/kubelet/prober/worker.go``: one worker per probe, started with the pod (before the
  sandbox exists), ticking every ``periodSeconds`` for the pod's life; a tick is skipped
  until kubelet's status shows the container, while ``int(seconds since start) <
  initialDelaySeconds``, and (liveness, readiness) until the startup probe has passed. The
  result flips after ``failureThreshold``/``successThreshold`` equal results in a row; the
  run counter survives container restarts. Liveness and startup workers hold after acting
  until a new container appears. A probe that times out is a failure (``prober.go``).
* ``pkg/kubelet/kuberuntime/kuberuntime_manager.go``: a liveness or startup failure kills
  the container (grace: the probe's ``terminationGracePeriodSeconds``, else the pod's, never
  under 2 s, ``kuberuntime_container.go``) and, in the same sync, starts the next one unless
  ``doBackOff`` says wait. ``doBackOff`` compares the back-off window with the time since
  the newest *exited* instance in the status read at the sync's start, which for a probe
  kill is the instance before the killed one. Windows follow ``flowcontrol.Backoff``: first
  10 s, doubling to 300 s, reset when an instance ran 10 minutes after the last change.
* ``pkg/kubelet/pod_workers.go``: a pod in back-off is synced again at the window's expiry
  plus up to 50 % jitter of the wait (v1.35, PR #133066); older kubelets retry every 10 s
  (+50 %) until the window has passed.
* ``pkg/kubelet/prober/prober_manager.go`` ``UpdatePodStatus``: every pod sync runs the
  readiness probe at once for a started container that is not ready (``manualTriggerCh``),
  which restarts that worker's ticker. Syncs come from the container start being noticed,
  from probe results, and from kills.

The app's side matters as much: the lab's uvicorn acts on SIGTERM only once its startup is
done and then waits for requests in flight, so a kill during a slow start or a slow health
check lasts until those end. Each prediction notes the close calls where a few hundred
milliseconds of node timing decide what happens (a back-off window, a tick against the
container's start or the app's boot).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from heapq import heappop, heappush
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from probelab.deadlines import (
    KUBELET_LAG,
    MIN_STOP_GRACE,
    RESTART_BACKOFF_INITIAL,
    RESTART_BACKOFF_MAX,
    ProbeSettings,
)
from probelab.errors import ProbelabError
from probelab.lab import APP_BOOT_ALLOWANCE, DEFAULT_GRACE
from probelab.manifests import (
    checked_object,
    containers_of,
    image_repository,
    pod_spec_of,
    read_documents,
)

PROBE_KINDS = ("startup", "liveness", "readiness")
BACKOFF_RESET = 600.0
"""flowcontrol entries for container restarts expire after 10 minutes (kubelet.go)."""
RESYNC_INTERVAL = 60.0
"""kubelet's default sync frequency, which caps a back-off requeue (pod_workers.go)."""
LEGACY_RETRY = 10.0
"""Before v1.35 a pod in back-off was retried after this error back-off (pod_workers.go)."""
LAB_IMAGE = "fastapi-health"
"""Repository name of the lab's image, wherever it was pushed."""
_EPSILON = 1e-6
CLOCK_LEAD = 0.05
"""The lab app's clock (create_app) starts this long before uvicorn listens."""
KNIFE_EDGE = 0.25
"""Seconds between two moments below which their order is a coin toss on a real node."""
PHASE_STEP = 0.25
"""How finely `latest` tries the phase of the probe ticks against the container start."""


# --- the manifest's pods ---------------------------------------------------------------


@dataclass(frozen=True)
class PodUnderTest:
    """A pod, or a workload's pod template, named after its object."""

    name: str
    spec: Mapping[str, Any]
    source: str  # "Pod/x" or "Deployment/x"


def read_pods(path: Path) -> list[PodUnderTest]:
    """The pods a manifest creates; one clear error when it has none or no probe at all."""
    pods: list[PodUnderTest] = []
    kinds: list[str] = []
    for index, document in enumerate(read_documents(path), start=1):
        obj = checked_object(path, index, document)
        label = f"{obj['kind']}/{obj['metadata']['name']}"
        kinds.append(label)
        spec = pod_spec_of(path, label, obj)
        if spec is None:
            continue
        if not spec.get("containers"):
            raise ProbelabError(f"{path}: {label} has no containers")
        list(containers_of(path, label, spec))  # each entry must be a mapping
        pods.append(PodUnderTest(obj["metadata"]["name"], spec, label))
    if not pods:
        found = ", ".join(kinds) or "no objects"
        raise ProbelabError(f"{path}: no Pod or pod template to model (found {found})")
    if not any(container_probes(c) for p in pods for c in p.spec["containers"]):
        names = ", ".join(p.source for p in pods)
        raise ProbelabError(f"{path}: {names} has no liveness, readiness or startup probe")
    return pods


def container_probes(container: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The container's probes by kind (startup, liveness, readiness)."""
    found = {kind: container.get(f"{kind}Probe") for kind in PROBE_KINDS}
    return {kind: probe for kind, probe in found.items() if isinstance(probe, Mapping)}


def is_lab_image(image: str) -> bool:
    """The lab's app, whether still the seed's placeholder or pushed to a registry."""
    return image_repository(image).rsplit("/", 1)[-1] == LAB_IMAGE


def env_of(container: Mapping[str, Any]) -> dict[str, str]:
    """A container's literal env values (``valueFrom`` entries cannot be known here)."""
    return {
        str(e.get("name")): str(e.get("value", ""))
        for e in container.get("env") or []
        if isinstance(e, Mapping) and "value" in e
    }


def container_port(container: Mapping[str, Any], port: object) -> int | None:
    """A probe's port as a number; a name is looked up in the container's ports."""
    if isinstance(port, int) and not isinstance(port, bool):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if isinstance(declared, Mapping) and declared.get("name") == port:
            number = declared.get("containerPort")
            return number if isinstance(number, int) else None
    return None


# --- what the process does -------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One probe's result and how long it took."""

    ok: bool
    duration: float
    why: str
    busy: float = 0.0  # how long the app keeps handling it (past a timeout, too)


@dataclass(frozen=True)
class App:
    """What a container's process does, as far as probes can tell. Times are seconds since
    the container started."""

    listens: frozenset[int] | None = None  # None: whatever the container declares
    boot: float = 0.0  # until the port accepts connections
    born: float = 0.0  # when the app's own clock starts (HEALTH_FAIL_AFTER counts from it)
    statuses: Mapping[str, int] = field(default_factory=dict)  # path -> HTTP status
    default_status: int = 200  # any other path
    health_path: str | None = None  # where fail_after and health_delay apply
    fail_after: float | None = None  # the health path answers 500 from born + this
    health_delay: float = 0.0  # the health path answers this late
    ready_path: str | None = None  # answers 503 when ready_ok is false
    ready_ok: bool = True
    missing: frozenset[str] = frozenset()  # executables exec probes cannot run
    exec_ok: bool = True  # exec commands the model cannot read
    grpc_ok: bool = False  # serves the gRPC health protocol
    stop: float = 0.25  # SIGTERM to exit
    ignores_sigterm: bool = False
    stops_after_boot: bool = False  # SIGTERM while booting: it exits when the boot ends
    abort: float = 0.05  # ... that long after it
    warm: float = 0.0  # a restarted instance boots this much faster (warm caches, alone)
    drains: bool = False  # SIGTERM waits for requests in flight
    exits_after: float | None = None  # the process ends by itself after this long
    exec_duration: float = 0.1

    @classmethod
    def lab(cls, env: Mapping[str, str], node: Node) -> App:
        """The lab image (``app/main.py``): uvicorn on 8080, four paths, its knobs."""
        slow = env.get("SLOW_START") == "1"
        sleep = _number(env, "STARTUP_SLEEP") if slow else 0.0
        dependency = env.get("READY_DEPENDENCY_URL", "").strip()
        return cls(
            listens=frozenset({8080}),
            boot=node.app_boot + sleep,
            born=node.app_boot - CLOCK_LEAD,
            warm=node.app_boot - node.app_reboot,
            statuses={"/": 200, "/healthz": 200, "/ready": 200, "/admin": 403, "/docs": 200},
            default_status=404,
            health_path="/healthz",
            fail_after=_number(env, "HEALTH_FAIL_AFTER", None),
            health_delay=_number(env, "HEALTH_DELAY"),
            ready_path="/ready",
            ready_ok=_lab_dependency_up(dependency),
            missing=frozenset({"curl", "wget", "grpc_health_probe", "nc"}),
            stop=node.app_stop,
            stops_after_boot=True,  # uvicorn handles signals only after the lifespan startup
            drains=True,  # uvicorn's graceful shutdown waits for running requests
            exec_duration=node.app_exec,
            ignores_sigterm=env.get("IGNORE_SIGTERM") == "1",
        )

    def http(self, port: int, path: str, age: float, timeout: float) -> Outcome:
        """An HTTP GET to a port that accepts connections: 200-399 passes, late fails."""
        path = path or "/"
        delay = self.health_delay if path == self.health_path else 0.0
        if delay >= timeout:
            why = f"timeout: :{port}{path} took {delay:g}s"
            return Outcome(False, float(timeout), why, busy=delay)
        status = self.statuses.get(path, self.default_status)
        failing = self.fail_after is not None and age >= self.born + self.fail_after
        if path == self.health_path and failing:
            status = 500
        if path == self.ready_path and not self.ready_ok:
            status = 503
        return Outcome(200 <= status < 400, delay, f"HTTP {status} from :{port}{path}", delay)

    def serves(self, port: int, age: float, declared: frozenset[int] = frozenset()) -> bool:
        """Accepts connections on ``port``; an app of unknown ports listens on the declared
        ones, or on any port when the container declares none."""
        ports = self.listens if self.listens is not None else declared
        return (port in ports or not ports) and age >= self.boot


def _number(env: Mapping[str, str], name: str, default: float | None = 0.0) -> Any:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ProbelabError(f"env {name} must be a number of seconds, got {raw!r}") from None


def _lab_dependency_up(url: str) -> bool:
    """A dependency on this pod's loopback is known: the lab app serves only 8080. Anything
    else is assumed up (``--dependency-down`` says otherwise)."""
    if not url:
        return True
    parts = urlsplit(url)
    if parts.hostname in ("127.0.0.1", "localhost", "::1"):
        return (parts.port or 80) == 8080 and parts.path in ("/", "/healthz", "/ready")
    return True


# --- the node and kubelet --------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """Latencies kubelet and the runtime add, in seconds. Defaults: the mean measured on
    the local cluster (containerd and kubelet logs, docs/predict.md)."""

    sandbox: float = 0.35  # probe workers start -> first container running
    create: float = 0.1  # a sync's stop returned -> next instance running
    notice: float = 0.6  # a container change -> kubelet's status shows it (PLEG, 1 s relist)
    follow_up: float = 1.0  # a new container's first readiness update -> its own sync
    publish: float = 0.05  # a probe result -> the API shows Ready
    check: float = 0.02  # an exit -> the back-off check in the same sync
    jitter: float = 0.25  # the pod worker's requeue jitter, as a fraction of the wait
    pickup: float = 0.5  # the sync loop's 1 s tick picking a due pod
    app_boot: float = 0.7  # the lab app: start -> uvicorn listening, with pods starting alongside
    app_reboot: float = 0.25  # the same for a restarted instance, which boots alone
    app_stop: float = 0.25  # the lab app: SIGTERM -> exited
    app_exec: float = 0.2  # the lab app: an exec probe running python3

    def latest(self) -> Node:
        """Every latency at its worst: for deadlines rather than estimates."""
        return replace(self, notice=1.2, publish=0.5, jitter=0.5, pickup=1.0, check=0.2)


@dataclass(frozen=True)
class Kubelet:
    """The kubelet version and settings that change the rules."""

    version: tuple[int, int] = (1, 35)
    backoff_initial: float = RESTART_BACKOFF_INITIAL
    backoff_max: float = RESTART_BACKOFF_MAX

    @classmethod
    def parse(
        cls, version: str, *, reduced_decay: bool = False, max_restart: float | None = None
    ) -> Kubelet:
        """``1.35`` or ``v1.35.4``; the CrashLoopBackOff feature gates, version-checked."""
        match = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.\d+)?", version.strip())
        if match is None:
            raise ProbelabError(f"kubelet version must look like 1.35, got {version!r}")
        parsed = (int(match[1]), int(match[2]))
        if parsed < (1, 20):
            raise ProbelabError(f"kubelet {version} predates startup probes (1.20); not modelled")
        initial, ceiling = RESTART_BACKOFF_INITIAL, RESTART_BACKOFF_MAX
        if reduced_decay:  # ReduceDefaultCrashLoopBackOffDecay, alpha in 1.33 (kubelet.go)
            if parsed < (1, 33):
                raise ProbelabError("ReduceDefaultCrashLoopBackOffDecay needs kubelet 1.33+")
            initial, ceiling = 1.0, 60.0
        if max_restart is not None:  # KubeletCrashLoopBackOffMax, alpha 1.32, beta 1.35
            if parsed < (1, 32):
                raise ProbelabError("maxContainerRestartPeriod needs kubelet 1.32+")
            if not 1 <= max_restart <= 300:
                raise ProbelabError("maxContainerRestartPeriod must be between 1 and 300 s")
            ceiling, initial = max_restart, min(initial, max_restart)
        return cls(parsed, initial, ceiling)

    @property
    def retries_at_expiry(self) -> bool:
        return self.version >= (1, 35)

    @property
    def probe_grace(self) -> bool:
        """Probe-level terminationGracePeriodSeconds, GA in 1.25."""
        return self.version >= (1, 25)


# --- the result, shared with `observe` --------------------------------------------------


@dataclass(frozen=True)
class Event:
    """Something that happened to a container: ``kind`` is one of started, unhealthy,
    killing, back-off, ready, not-ready; ``reason`` the probe or cause."""

    at: float
    kind: str
    reason: str


@dataclass
class ContainerTimeline:
    """One container's story in seconds since the pod's first container start."""

    name: str
    restarts_at: list[float] = field(default_factory=list)
    crash_loop_back_off_at: float | None = None
    ready_at: float | None = None
    events: list[Event] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # where the model is unsure

    def clip(self, duration: float) -> None:
        """Keep only what happened within ``duration`` seconds."""
        self.restarts_at = [t for t in self.restarts_at if t <= duration]
        self.events = [e for e in self.events if e.at <= duration]
        if self.ready_at is not None and self.ready_at > duration:
            self.ready_at = None
        clbo = self.crash_loop_back_off_at
        if clbo is not None and clbo > duration:
            self.crash_loop_back_off_at = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "restarts": len(self.restarts_at),
            "restarts_at": [round(t, 2) for t in self.restarts_at],
            "crash_loop_back_off_at": _rounded(self.crash_loop_back_off_at),
            "ready_at": _rounded(self.ready_at),
            "events": [
                {"at": round(e.at, 2), "kind": e.kind, "reason": e.reason}
                for e in sorted(self.events, key=lambda e: e.at)
            ],
            "notes": self.notes,
        }


@dataclass
class PodTimeline:
    name: str
    containers: list[ContainerTimeline]


@dataclass
class Timelines:
    """What ``predict`` and ``observe`` both print."""

    source: str  # "predict" or "observe"
    duration: float
    pods: list[PodTimeline]

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "duration": self.duration,
            "pods": [
                {"name": p.name, "containers": [c.as_json() for c in p.containers]}
                for p in self.pods
            ],
        }

    def render(self, fmt: str) -> str:
        if fmt == "json":
            return json.dumps(self.as_json(), indent=2)
        lines = [f"{self.source}: first {self.duration:g}s after the first container start"]
        for pod in self.pods:
            for c in pod.containers:
                restarts = ", ".join(f"{t:.1f}" for t in c.restarts_at) or "none"
                lines += [
                    f"pod/{pod.name} container {c.name}",
                    f"  restarts ({len(c.restarts_at)}): {restarts}",
                    f"  CrashLoopBackOff: {_text(c.crash_loop_back_off_at)}",
                    f"  Ready: {_text(c.ready_at)}",
                    *(f"  note: {note}" for note in c.notes),
                ]
                lines += [
                    f"  {e.at:7.1f}s  {e.kind:<10} {e.reason}"
                    for e in sorted(c.events, key=lambda e: e.at)
                ]
        return "\n".join(lines)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _text(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f}s"


# --- the simulation -------------------------------------------------------------------


@dataclass
class _Instance:
    """One run of the container (an attempt, in kubelet's words)."""

    start: float
    visible: float  # kubelet's status shows it: probe workers can see it
    started: float | None  # startup probe passed (or none): liveness/readiness may run
    killed: float | None = None  # kill decided
    exit: float | None = None
    busy_until: float = 0.0  # the last probe request the app is still handling


@dataclass
class _Worker:
    """prober/worker.go's state for one probe of one container."""

    kind: str
    probe: Mapping[str, Any]
    settings: ProbeSettings
    origin: float  # its ticker fires at origin + k * period; a manual run resets it
    last_ok: bool | None = None
    run: int = 0
    on_hold: bool = False
    seen: _Instance | None = None
    result: bool | None = None  # what the results manager holds for the seen instance
    generation: int = 0  # bumped by a ticker reset: older scheduled ticks are void


class _Backoff:
    """client-go flowcontrol.Backoff as kubelet configures it for container restarts."""

    def __init__(self, kubelet: Kubelet) -> None:
        self.kubelet = kubelet
        self.window: float | None = None
        self.updated = 0.0

    def _expired(self, since: float) -> bool:
        return self.window is None or since - self.updated > BACKOFF_RESET

    def waiting(self, now: float, since: float) -> bool:
        """IsInBackOffSince(key, since): still inside the window counted from ``since``."""
        return not self._expired(since) and now - since < (self.window or 0.0)

    def next(self, now: float, since: float) -> None:
        """Next(key, since): start at the initial window or double it, capped."""
        if self._expired(since):
            self.window = self.kubelet.backoff_initial
        else:
            self.window = min(2 * (self.window or 0.0), self.kubelet.backoff_max)
        self.updated = now


class _Container:
    """Plays kubelet forward for one container; pods' containers are modelled apart."""

    def __init__(
        self,
        pod: PodUnderTest,
        container: Mapping[str, Any],
        app: App,
        node: Node,
        kubelet: Kubelet,
        *,
        first_start: float,
        duration: float,
    ) -> None:
        self.pod, self.container, self.app = pod, container, app
        self.node, self.kubelet, self.duration = node, kubelet, duration
        self.result = ContainerTimeline(str(container.get("name", "")))
        self.queue: list[tuple[float, int, Callable[[], None]]] = []
        self.sequence = 0
        self.backoff = _Backoff(kubelet)
        self.instances: list[_Instance] = []
        self.ready = False
        # Every worker of the pod starts in its first sync, before the sandbox exists
        # (kubelet.go SyncPod adds the pod to the probe manager; worker.go run()).
        self.workers = [
            _Worker(kind, probe, _probe_settings(probe), -node.sandbox)
            for kind, probe in container_probes(container).items()
        ]
        for worker in self.workers:
            self.at(worker.origin, partial(self.tick, worker, 0))
        self.at(first_start, lambda: self.begin(first_start, restart=False))

    # event plumbing
    def at(self, when: float, action: Callable[[], None]) -> None:
        self.sequence += 1
        heappush(self.queue, (when, self.sequence, action))

    def run(self) -> ContainerTimeline:
        while self.queue and self.queue[0][0] <= self.duration:
            self.now, _, action = heappop(self.queue)
            action()
        self.result.clip(self.duration)
        return self.result

    def event(self, at: float, kind: str, reason: str) -> None:
        self.result.events.append(Event(at, kind, reason))

    def worker(self, kind: str) -> _Worker | None:
        return next((w for w in self.workers if w.kind == kind), None)

    # readiness as kubelet's status reports it
    def set_ready(self, ready: bool, at: float, reason: str) -> None:
        if ready == self.ready:
            return
        self.ready = ready
        self.event(at, "ready" if ready else "not-ready", reason)
        if ready and self.result.ready_at is None:
            self.result.ready_at = at

    def gone(self, instance: _Instance, reason: str) -> None:
        """The status after an exit: not ready, unless the same relist already saw the
        next instance: then the new container's first status decides (not ready while it has
        a readiness probe, ready once running without one)."""
        if self.instances[-1] is instance:
            self.set_ready(False, self.now, reason)

    def later(self, when: float, ready: bool, reason: str) -> None:
        self.at(when, lambda: self.set_ready(ready, when, reason))

    # container lifecycle
    def begin(self, start: float, *, restart: bool) -> None:
        """A new instance runs; kubelet's status shows it after the next relist."""
        visible = start + self.node.notice
        gated = self.worker("startup") is not None
        instance = _Instance(start, visible, None if gated else visible)
        self.instances.append(instance)
        if restart:
            self.result.restarts_at.append(start)
            if self.app.warm:
                warm = self.app.warm
                self.app = replace(self.app, boot=self.app.boot - warm, born=self.app.born - warm,
                                   warm=0.0)  # fmt: skip
        self.event(start, "started", "restart" if restart else "first start")
        if not gated and self.worker("readiness") is None:
            self.later(visible + self.node.publish, True, "running")
        self.at(visible, self.pod_sync)  # PLEG saw the start: kubelet syncs the pod
        if self.app.exits_after is not None:
            end = start + self.app.exits_after
            self.at(end, lambda: self.exited(instance, end))

    def exited(self, instance: _Instance, at: float) -> None:
        """The process ended by itself: the next sync, after the relist, restarts it."""
        if instance.exit is not None:
            return
        instance.exit = at
        self.at(at + self.node.notice, partial(self.gone, instance, "container exited"))
        self.at(at + self.node.notice, lambda: self.sync_after_exit(instance))

    def kill(self, instance: _Instance, at: float, kind: str, probe: Mapping[str, Any]) -> None:
        """killContainer: SIGTERM, SIGKILL at the end of the grace period; the same sync
        then starts the next instance unless doBackOff says wait."""
        instance.killed = at
        self.event(at, "killing", kind)
        instance.exit = at + self.grace(probe)  # SIGKILL
        if not self.app.ignores_sigterm:
            honoured, stop = at, self.app.stop
            booted = instance.start + self.app.boot
            if self.app.stops_after_boot and booted > at:
                honoured, stop = booted, self.app.abort  # startup cancelled, no shutdown
            if self.app.drains:
                honoured = max(honoured, instance.busy_until)
            instance.exit = min(instance.exit, honoured + stop)
        self.at(instance.exit + self.node.notice, partial(self.gone, instance, "container killed"))
        self.at(instance.exit, lambda: self.sync_after_kill(instance))

    def grace(self, probe: Mapping[str, Any]) -> float:
        """setTerminationGracePeriod: the probe's, else the pod's, never under 2 s."""
        pod_grace = self.pod.spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE)
        own = probe.get("terminationGracePeriodSeconds")
        chosen = own if own is not None and self.kubelet.probe_grace else pod_grace
        return max(float(chosen), MIN_STOP_GRACE)

    def restarts(self) -> bool:
        return bool(self.pod.spec.get("restartPolicy", "Always") != "Never")

    def sync_after_kill(self, instance: _Instance) -> None:
        # doBackOff reads the status from the sync's start: the killed instance was still
        # running, so the newest exited one is the instance before it.
        if not self.restarts():
            return
        index = self.instances.index(instance)
        previous = self.instances[index - 1].exit if index else None
        now = self.now + self.node.check
        self.note_knife_edge(now, previous)
        if previous is None or not self.backoff.waiting(now, previous):
            if previous is not None:
                self.backoff.next(now, previous)
            self.at(self.now + self.node.create, lambda: self.begin(self.now, restart=True))
            return
        self.event(now, "back-off", "CrashLoopBackOff")
        noticed = self.now + self.node.notice
        self.at(noticed, lambda: self.sync_after_exit(instance))

    def note_knife_edge(self, now: float, previous: float | None) -> None:
        """A run within KNIFE_EDGE of the window: a few ms of stop time decide."""
        window = self.backoff.window
        if previous is None or window is None or abs(now - previous - window) > KNIFE_EDGE:
            return
        self.close_call(
            now,
            f"the previous exit ({now - previous:.2f}s before) and the {window:g}s back-off "
            "window: kubelet may as well wait (CrashLoopBackOff) as restart at once",
        )

    def close_call(self, at: float, between: str) -> None:
        """Note (once per kind, inside the window) where the node's timing could flip
        what happens next."""
        text = f"close call at {at:.1f}s between {between}"
        kinds = {note.split(" between ", 1)[1] for note in self.result.notes}
        if at <= self.duration and text.split(" between ", 1)[1] not in kinds:
            self.result.notes.append(text)

    def sync_after_exit(self, instance: _Instance) -> None:
        """A sync whose status shows ``instance`` exited: start now or wait out the window."""
        if not self.restarts():
            return
        assert instance.exit is not None
        since = instance.exit
        if self.backoff.waiting(self.now, since):
            if self.result.crash_loop_back_off_at is None:
                self.result.crash_loop_back_off_at = self.now
            if not any(e.kind == "back-off" and e.at >= since for e in self.result.events):
                self.event(self.now, "back-off", "CrashLoopBackOff")
            self.at(self.retry_at(since), lambda: self.sync_after_exit(instance))
            return
        self.backoff.next(self.now, since)
        self.at(self.now + self.node.create, lambda: self.begin(self.now, restart=True))

    def retry_at(self, since: float) -> float:
        """pod_workers.go completeWork: when a pod left in back-off is synced again."""
        if self.kubelet.retries_at_expiry:
            expiry = since + (self.backoff.window or 0.0)
            wait = min(max(expiry - self.now, 0.0), RESYNC_INTERVAL)
        else:
            wait = LEGACY_RETRY
        return self.now + wait * (1 + self.node.jitter) + self.node.pickup

    # probes
    def pod_sync(self) -> None:
        """A pod sync: prober_manager.go UpdatePodStatus runs the readiness probe at once
        (manualTriggerCh) for a started container that is not ready, and worker.go then
        restarts its ticker from that moment."""
        worker = self.worker("readiness")
        instance = self.visible_instance(self.now)
        if worker is None or instance is None:
            return
        if worker.seen is instance and worker.result is True:
            return  # ready: UpdatePodStatus triggers nothing
        running = instance.exit is None or instance.exit > self.now
        started = instance.started is not None and instance.started <= self.now
        if running and started:
            worker.generation += 1
            worker.origin = self.now
            self.tick(worker, worker.generation)

    def visible_instance(self, at: float) -> _Instance | None:
        return next((i for i in reversed(self.instances) if i.visible <= at), None)

    def tick(self, worker: _Worker, generation: int) -> None:
        """worker.go doProbe, once, then wait for the ticker."""
        if generation != worker.generation:
            return  # the ticker was reset after this tick was due
        tick = self.now
        done = tick + self.probe_once(worker, tick)
        period = worker.settings.period
        passed = int((tick - worker.origin) / period + _EPSILON)
        following = worker.origin + (passed + 1) * period
        # A probe longer than the period gets the tick that fired meanwhile at once (the
        # ticker keeps one); the grid itself does not move.
        upcoming = done if done > following else following
        self.at(upcoming, partial(self.tick, worker, generation))

    def probe_once(self, worker: _Worker, tick: float) -> float:
        latest = self.instances[-1] if self.instances else None
        # (Readiness is probed at first sight anyway, by the sync that sees the container.)
        near = latest is not None and abs(tick - latest.visible) < KNIFE_EDGE
        old_enough = latest is not None and tick - latest.start >= worker.settings.initial_delay
        if near and old_enough and worker.kind != "readiness":
            self.close_call(tick, f"a {worker.kind} tick and kubelet's first sight of a container")
        instance = self.visible_instance(tick)
        if instance is None:
            return 0.0  # no container in kubelet's status yet
        if worker.seen is not instance:  # a new container: initial value, resume probing
            worker.seen, worker.on_hold = instance, False
            worker.result = {"readiness": False, "liveness": True}.get(worker.kind)
            if worker.kind == "readiness":
                # Setting the initial failure is an update, whose sync runs once the
                # current one is done (measured: about a second later).
                self.at(tick + self.node.follow_up, self.pod_sync)
                # The status written by this sync shows the new container not ready yet.
                self.set_ready(False, tick, "new container")
        if worker.on_hold:
            return 0.0
        if instance.exit is not None and instance.exit <= tick:
            return 0.0  # not running: readiness already false, nothing to probe
        age = tick - instance.start
        delay = worker.settings.initial_delay
        if delay and abs(age - delay) < KNIFE_EDGE:
            self.close_call(tick, f"a {worker.kind} tick and initialDelaySeconds")
        if int(age + _EPSILON) < delay:
            return 0.0
        started = instance.started is not None and instance.started <= tick
        if worker.kind == "startup" and started:
            return 0.0
        if worker.kind != "startup" and not started:
            return 0.0
        if abs(age - self.app.boot) < KNIFE_EDGE:
            self.close_call(tick, f"a {worker.kind} probe and the app's boot")
        outcome = self.outcome(worker, age)
        instance.busy_until = max(instance.busy_until, tick + outcome.busy)
        done = tick + outcome.duration
        if not outcome.ok:
            self.event(done, "unhealthy", f"{worker.kind}: {outcome.why}")
        if worker.last_ok == outcome.ok:
            worker.run += 1
        else:
            worker.last_ok, worker.run = outcome.ok, 1
        threshold = (
            worker.settings.success_threshold if outcome.ok else worker.settings.failure_threshold
        )
        if worker.run >= threshold:
            self.act(worker, instance, outcome.ok, done)
        return outcome.duration

    def act(self, worker: _Worker, instance: _Instance, ok: bool, at: float) -> None:
        """The result is set (kubelet.go syncLoopIteration handles the update with a sync)."""
        changed, worker.result = worker.result != ok, ok
        if worker.kind == "readiness":
            if changed:
                self.later(at + self.node.publish, ok, "readiness")
                if not ok:
                    self.at(at, self.pod_sync)
            return
        if worker.kind == "liveness" and ok:
            return
        worker.on_hold, worker.run = True, 0
        if worker.kind == "startup" and ok:
            instance.started = at
            if self.worker("readiness") is None:
                self.later(at + self.node.publish, True, "startup")
            self.at(at, self.pod_sync)
            return
        if instance.killed is None:
            self.at(at, self.pod_sync)  # the kill's sync probes readiness first
            self.kill(instance, at, worker.kind, worker.probe)

    def outcome(self, worker: _Worker, age: float) -> Outcome:
        return probe_outcome(worker.probe, self.container, self.app, age)


def _probe_settings(probe: Mapping[str, Any]) -> ProbeSettings:
    settings = ProbeSettings.from_manifest(probe)
    assert settings is not None
    return settings


_URL = re.compile(r"https?://(?:localhost|127\.0\.0\.1|\[::1\])(?::(\d+))?(/[^\s'\"]*)?")


def declared_ports(container: Mapping[str, Any]) -> frozenset[int]:
    return frozenset(
        p["containerPort"]
        for p in container.get("ports") or []
        if isinstance(p, Mapping) and isinstance(p.get("containerPort"), int)
    )


def probe_outcome(
    probe: Mapping[str, Any], container: Mapping[str, Any], app: App, age: float
) -> Outcome:
    """One probe against ``app`` at ``age`` seconds after the container started."""
    timeout = float(_probe_settings(probe).timeout)
    declared = declared_ports(container)
    if isinstance(probe.get("httpGet"), Mapping):
        get = probe["httpGet"]
        port = container_port(container, get.get("port"))
        if port is None:
            return Outcome(False, 0.0, f"no port named {get.get('port')!r}")
        if not app.serves(port, age, declared):
            return Outcome(False, 0.0, f"connection refused on :{port}")
        return app.http(port, str(get.get("path") or "/"), age, timeout)
    if isinstance(probe.get("tcpSocket"), Mapping):
        port = container_port(container, probe["tcpSocket"].get("port"))
        if port is not None and app.serves(port, age, declared):
            return Outcome(True, 0.0, f"connected to :{port}")
        return Outcome(False, 0.0, f"connection refused on :{port}")
    if isinstance(probe.get("grpc"), Mapping):
        port = probe["grpc"].get("port")
        if not isinstance(port, int) or not app.serves(port, age, declared):
            return Outcome(False, 0.0, f"connection refused on :{port}")
        return Outcome(app.grpc_ok, 0.0, "gRPC health " + ("SERVING" if app.grpc_ok else "failed"))
    if isinstance(probe.get("exec"), Mapping):
        return _exec_outcome(probe["exec"].get("command") or [], app, age, timeout, declared)
    return Outcome(False, 0.0, "no handler")


def _exec_outcome(
    command: Sequence[Any], app: App, age: float, timeout: float, declared: frozenset[int]
) -> Outcome:
    """An exec probe: a command the image lacks fails; one that GETs the app's own
    loopback URL is that HTTP check; anything else answers ``app.exec_ok``."""
    words = [str(word) for word in command]
    cost = app.exec_duration
    if not words:
        return Outcome(False, cost, "empty command")
    program = words[0].rsplit("/", 1)[-1]
    if program in app.missing:
        return Outcome(False, cost, f"{program}: executable file not found")
    url = next((m for m in map(_URL.search, words) if m), None)
    if url is None:
        return Outcome(app.exec_ok, cost, "command " + ("succeeded" if app.exec_ok else "failed"))
    port = int(url[1] or 80)
    if not app.serves(port, age, declared):
        return Outcome(False, cost, f"connection refused on :{port}")
    answer = app.http(port, url[2] or "/", age, timeout)
    return Outcome(answer.ok, cost + answer.duration, answer.why, cost + answer.busy)


# --- entry points ---------------------------------------------------------------------


AppFor = Callable[[Mapping[str, Any]], App]
"""Chooses the App of one container spec."""


def app_for(node: Node, *, other: App | None = None, **overrides: Any) -> AppFor:
    """The lab image's knobs for lab containers, ``other`` (default: healthy, no boot
    time) for the rest; ``overrides`` replace fields of both."""

    def choose(container: Mapping[str, Any]) -> App:
        if is_lab_image(str(container.get("image", ""))):
            app = App.lab(env_of(container), node)
        else:
            app = other or App(stop=node.app_stop)
        return replace(app, **overrides) if overrides else app

    return choose


def predict_pod(
    pod: PodUnderTest,
    *,
    duration: float,
    node: Node | None = None,
    kubelet: Kubelet | None = None,
    apps: AppFor | None = None,
) -> PodTimeline:
    """Every container's timeline for ``duration`` seconds after the first start."""
    node = node or Node()
    kubelet = kubelet or Kubelet()
    choose = apps or app_for(node)
    containers = [
        _Container(
            pod,
            container,
            choose(container),
            node,
            kubelet,
            first_start=index * node.create,
            duration=duration,
        ).run()
        for index, container in enumerate(pod.spec["containers"])
    ]
    return PodTimeline(pod.name, containers)


def predict(
    path: Path,
    *,
    duration: float,
    node: Node | None = None,
    kubelet: Kubelet | None = None,
    apps: AppFor | None = None,
) -> Timelines:
    """``probelab predict``: the timelines of every pod in a manifest."""
    if duration <= 0:
        raise ProbelabError(f"--duration must be positive, got {duration:g}")
    pods = [
        predict_pod(pod, duration=duration, node=node, kubelet=kubelet, apps=apps)
        for pod in read_pods(path)
    ]
    return Timelines("predict", duration, pods)


def latest(
    pod: PodUnderTest,
    when: Callable[[ContainerTimeline], float | None],
    *,
    container: int = 0,
    horizon: float = 600.0,
    kubelet: Kubelet | None = None,
) -> float:
    """A deadline for a lab: the latest time, in seconds since the first container start,
    at which ``when`` first holds, with every latency at its worst, every phase of the
    probe ticks against the start, either side of a back-off knife edge, an app that boots
    as usual or takes the lab's whole APP_BOOT_ALLOWANCE, plus KUBELET_LAG.
    """
    worst = Node().latest()
    periods = [
        _probe_settings(probe).period
        for spec in pod.spec["containers"]
        for probe in container_probes(spec).values()
    ] or [1]
    found = []
    variants = [
        replace(worst, sandbox=step * PHASE_STEP, check=check, app_boot=boot)
        for step in range(int(max(periods) / PHASE_STEP) + 1)
        for check in (worst.check, -KNIFE_EDGE)
        for boot in (worst.app_boot, APP_BOOT_ALLOWANCE)
    ]
    for node in variants:
        timelines = predict_pod(pod, duration=horizon, node=node, kubelet=kubelet)
        at = when(timelines.containers[container])
        if at is None:
            raise ProbelabError(f"{pod.source}: not predicted within {horizon:g}s")
        found.append(at)
    return max(found) + KUBELET_LAG
