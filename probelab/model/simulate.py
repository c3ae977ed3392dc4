"""kubelet played forward, event by event, for each container of a pod.

The rules (kubelet source, v1.33 to v1.36, in words; constants in :mod:`.rules`):

* ``prober/worker.go``: one worker per probe, started with the pod before its sandbox
  exists, ticking every ``periodSeconds`` for the pod's life. A tick is skipped until
  kubelet's status shows the container, while ``int(age) < initialDelaySeconds`` (age
  from the status' StartedAt, which keeps whole seconds only), and
  (liveness, readiness) until the startup probe has passed, as the status manager shows it
  (a worker ticking in the very instant it passes still sees it not started); until then
  the container is not ready (``prober_manager.go`` ``UpdatePodStatus``), so a restarted one turns
  unready as soon as kubelet's status shows it. A result flips after
  ``failureThreshold``/``successThreshold`` equal results in a row; the run counter
  survives restarts. Liveness and startup workers hold after acting until a new container
  appears. A probe that times out fails; one that errors (an unresolvable port) is
  discarded.
* From 1.35 (``kubelet_pods.go``, ``prober_manager.go`` ``isContainerStarted``): an instance
  started in the very sync that killed a started one inherits its ``Started`` (the status
  copies it by container name), so the other workers probe it, and with no readiness probe
  it stays Ready, until the startup worker's first tick on it resets its result. That tick
  runs no probe (it read the status first), so the startup probe passes a period later. A
  worker ticking in the same instant may read the status before the reset or after it, a
  race (:attr:`.node.Node.reads_before_reset`).
* ``kubelet.go`` and ``pod_workers.go``: a startup pass reaches the status manager at once
  (liveness and readiness see it), but Ready without a readiness probe is computed by the
  pod sync it asks for. When the pass came at the startup worker's first tick on the
  container, that tick's initial result had asked for a sync already, so the pass's sync
  waits for the next periodic relist (``podCache.GetNewerThan``).
* ``kuberuntime/kuberuntime_manager.go``: a liveness or startup failure kills the
  container and, in the same sync, starts the next one unless ``doBackOff`` says wait.
  ``doBackOff`` compares the back-off window with the time since the newest *exited*
  instance in the status read at the sync's start, which for a probe kill is the instance
  before the killed one.
* ``pod_workers.go``: a pod left in back-off is requeued (:meth:`.rules.Kubelet.retry_wait`)
  plus jitter, and picked up by the sync loop's ticker.
* ``prober/prober_manager.go`` ``UpdatePodStatus``: every pod sync runs the readiness
  probe at once for a started, unready container (``manualTriggerCh``), which restarts
  that worker's ticker. After a start that is the sync of the relist that saw it, then
  one more: the worker's initial result and the API's echo of the new status each ask
  for a sync, and ``pod_workers.go`` runs it only once the pod cache is newer than the
  last sync (``podCache.GetNewerThan``), i.e. at the next relist. A readiness probe that
  finds the app still booting at both waits for its ticker, a period after the second.
  From 1.36 (``PLEGOnDemandRelist``) the sync that started the container relists it at
  once, so the first of those runs follows the start by milliseconds and the second comes
  at the next periodic relist, anywhere within a period.

The lab app's side matters as much: uvicorn acts on SIGTERM only once its startup is done
and then waits for requests in flight, so a kill during a slow start or a slow health check
lasts until those end.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from heapq import heappop, heappush
from typing import Any

from probelab.model.app import App, Outcome, assumptions_of, probe_outcome
from probelab.model.node import Latencies, Node
from probelab.model.pods import PodUnderTest
from probelab.model.probes import ProbeSettings, container_probes, pulls_every_start
from probelab.model.rules import BACKOFF_RESET, Kubelet
from probelab.model.schema import ContainerTimeline, Event, PodTimeline

_EPSILON = 1e-6
KNIFE_EDGE = 0.25
"""Seconds between two moments below which their order is a coin toss on a real node."""

AppFor = Callable[[Mapping[str, Any], Latencies], App]
"""Chooses the App of one container spec, with this run's latencies."""


@dataclass
class _Instance:
    """One run of the container (an attempt, in kubelet's words)."""

    start: float
    visible: float  # kubelet's status shows it: probe workers can see it
    started: float | None  # startup probe passed (or none): liveness/readiness may run
    # 1.35+: started inherited from the killed instance until the startup worker's first
    # look at this moment; whether a worker ticking at that very moment reads it first
    reset: float | None = None
    reads_first: bool = False
    killed: float | None = None
    exit: float | None = None
    busy_until: float = 0.0  # the last probe request the app is still handling
    second: float = 0.0  # how far into its wall-clock second the instance started


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
    first_look: bool = False  # this tick is its first at the instance it sees
    result: bool | None = None
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
        """IsInBackOffSince: still inside the window counted from ``since``."""
        return not self._expired(since) and now - since < (self.window or 0.0)

    def next(self, now: float, since: float) -> None:
        """Next: start at the initial window or double it, capped."""
        if self._expired(since):
            self.window = self.kubelet.backoff_initial
        else:
            self.window = min(2 * (self.window or 0.0), self.kubelet.backoff_max)
        self.updated = now


class _Container:
    """Plays kubelet forward for one container; a pod's containers are modelled apart."""

    def __init__(
        self,
        pod: PodUnderTest,
        container: Mapping[str, Any],
        app: App,
        latency: Latencies,
        kubelet: Kubelet,
        *,
        first_start: float,
        duration: float,
    ) -> None:
        self.pod, self.container, self.app = pod, container, app
        self.lat, self.kubelet, self.duration = latency, kubelet, duration
        self.now = 0.0
        self.result = ContainerTimeline(str(container.get("name", "")))
        self.result.assumptions = assumptions_of(container, app) + list(kubelet.assumptions)
        self.queue: list[tuple[float, int, Callable[[], None]]] = []
        self.sequence = 0
        self.backoff = _Backoff(kubelet)
        self.instances: list[_Instance] = []
        self.ready = False
        self.pulls = pulls_every_start(container)
        sandbox = latency("sandbox")
        if self.pulls:
            sandbox += latency("first_pull")
            self.result.assumptions.append(
                "imagePullPolicy Always: every start asks the registry first; pull times "
                "assumed (first pull 0-10 s, later ones 0.2-2 s)"
            )
        self.workers = [
            _Worker(kind, probe, ProbeSettings.of(probe), -sandbox)
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
        next instance (whose first status then decides)."""
        if self.instances[-1] is instance:
            self.set_ready(False, self.now, reason)

    def later(self, when: float, ready: bool, reason: str) -> None:
        self.at(when, lambda: self.set_ready(ready, when, reason))

    # container lifecycle
    def begin(self, start: float, *, restart: bool, killed: _Instance | None = None) -> None:
        """A new instance runs; kubelet's status shows it after the next relist (from 1.36
        the on-demand one of the sync that started it). ``killed``: the instance the same
        sync killed, whose Started it takes (1.35+) if the status still shows it then."""
        seen_by = "relisted" if self.kubelet.relists_on_demand else "notice"
        visible = start + self.lat(seen_by)
        startup = self.worker("startup")
        gated = startup is not None
        instance = _Instance(start, visible, None if gated else visible, second=self.lat("second"))
        inherits = killed is not None and self.shown_started(killed, visible)
        if startup is not None and inherits and self.kubelet.carries_started:
            instance.reset = self.next_tick(startup, visible)
            instance.reads_first = self.lat.happens("reads_before_reset")
        self.instances.append(instance)
        if restart:
            self.result.restarts_at.append(start)
            if self.app.warm:
                warm = self.app.warm
                self.app = replace(self.app, boot=self.app.boot - warm, born=self.app.born - warm,
                                   warm=0.0)  # fmt: skip
        self.event(start, "started", "restart" if restart else "first start")
        if not gated and self.worker("readiness") is None:
            self.later(visible + self.lat("publish"), True, "running")
        elif gated and restart:  # UpdatePodStatus: not started, so not ready, from its first status
            reset = instance.reset  # the inherited Started's end, if any
            ready = reset is not None and self.worker("readiness") is None
            self.later(visible + self.lat("publish"), ready, "startup probe not passed yet")
            if reset is not None:
                self.at(reset, partial(self.inheritance_ends, instance))
        self.at(visible, self.pod_sync)  # PLEG saw the start: kubelet syncs the pod
        if self.app.exits_after is not None:
            end = start + self.app.exits_after
            self.at(end, lambda: self.exited(instance, end))

    def inheritance_ends(self, instance: _Instance) -> None:
        """The startup worker's look asks for a sync, which shows the instance not started,
        so not ready; unless an earlier kill's sync holds the pod, after which the
        successor's first status decides (a kill in this instant is that sync)."""
        if instance.killed is None or instance.killed > self.now - _EPSILON:
            reason = "the startup worker's first look ends the inherited Started"
            self.later(self.now + self.lat("publish"), False, reason)

    def exited(self, instance: _Instance, at: float) -> None:
        """The process ended by itself: the next sync, after the relist, restarts it."""
        if instance.exit is not None:
            return
        instance.exit = at
        noticed = at + self.lat("notice")
        self.at(noticed, partial(self.gone, instance, "container exited"))
        self.at(noticed, lambda: self.sync_after_exit(instance))

    def kill(self, instance: _Instance, at: float, kind: str, probe: Mapping[str, Any]) -> None:
        """killContainer: SIGTERM, SIGKILL at the end of the grace period; the same sync
        then starts the next instance unless doBackOff says wait."""
        instance.killed = at
        self.event(at, "killing", kind)
        grace = self.kubelet.grace(
            self.pod.spec.get("terminationGracePeriodSeconds"),
            probe.get("terminationGracePeriodSeconds"),
        )
        instance.exit = at + grace  # SIGKILL
        if not self.app.ignores_sigterm:
            honoured, stop = at, self.lat("app_stop")  # each stop its own draw
            booted = instance.start + self.app.boot
            if self.app.stops_after_boot and booted > at:
                honoured, stop = booted, self.app.abort  # startup cancelled, no shutdown
            if self.app.drains:
                honoured = max(honoured, instance.busy_until)
            instance.exit = min(instance.exit, honoured + stop)
        noticed = instance.exit + self.lat("notice")
        self.at(noticed, partial(self.gone, instance, "container killed"))
        self.at(instance.exit, lambda: self.sync_after_kill(instance))

    def next_start(self) -> float:
        """From the sync's decision to start until the new instance runs."""
        return self.lat("create") + (self.lat("pull") if self.pulls else 0.0)

    def restarts(self) -> bool:
        return bool(self.pod.spec.get("restartPolicy", "Always") != "Never")

    def sync_after_kill(self, instance: _Instance) -> None:
        """doBackOff reads the status from the sync's start: the killed instance was still
        running, so the newest exited one is the instance before it."""
        if not self.restarts():
            return
        index = self.instances.index(instance)
        previous = self.instances[index - 1].exit if index else None
        now = self.now + self.lat("check")
        self.note_knife_edge(now, previous)
        if previous is None or not self.backoff.waiting(now, previous):
            if previous is not None:
                self.backoff.next(now, previous)
            restart = partial(self.begin, restart=True, killed=instance)
            self.at(self.now + self.next_start(), lambda: restart(self.now))
            return
        self.event(now, "back-off", "CrashLoopBackOff")
        self.at(self.now + self.lat("notice"), lambda: self.sync_after_exit(instance))

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
        """Note, once per kind inside the window, where node timing could flip the path."""
        kinds = {note.split(" between ", 1)[1] for note in self.result.notes}
        if at <= self.duration and between not in kinds:
            self.result.notes.append(f"close call at {at:.1f}s between {between}")

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
        self.at(self.now + self.next_start(), lambda: self.begin(self.now, restart=True))

    def retry_at(self, since: float) -> float:
        """pod_workers.go completeWork: when a pod left in back-off is synced again."""
        remaining = since + (self.backoff.window or 0.0) - self.now
        wait = self.kubelet.retry_wait(remaining)
        return self.now + wait * (1 + self.lat("jitter")) + self.lat("pickup")

    # probes
    def pod_sync(self) -> None:
        """A pod sync runs the readiness probe at once for a started container that is
        not ready, and the worker's ticker restarts from that moment."""
        worker = self.worker("readiness")
        instance = self.visible_instance(self.now)
        if worker is None or instance is None:
            return
        if worker.seen is instance and worker.result is True:
            return
        running = instance.exit is None or instance.exit > self.now
        started = self.seen_started(instance, self.now, worker.kind, by_sync=True)
        if running and started:
            worker.generation += 1
            worker.origin = self.now
            self.tick(worker, worker.generation, by_sync=True)

    def follow_up(self) -> float:
        """The sync after the one that saw a start: it waits for a relist newer than that
        sync, a whole period later when the sync came with a periodic relist; from 1.36 it
        came with the on-demand one, so the next periodic relist is anywhere within a period."""
        return self.lat("relist_wait" if self.kubelet.relists_on_demand else "follow_up")

    def shown_started(self, instance: _Instance, at: float) -> bool:
        """Whether kubelet's status at ``at`` shows ``instance`` started: its startup probe
        passed, or it inherited Started and the startup worker has not yet looked at it (a
        look in that very instant comes first). The look writes the status manager at once
        (``SetContainerStartup``), even while a kill's sync holds the pod."""
        if instance.started is not None and instance.started <= at:
            return True
        return instance.reset is not None and at < instance.reset - _EPSILON

    @staticmethod
    def next_tick(worker: _Worker, at: float) -> float:
        """The worker's first tick at or after ``at`` (its ticker never reset)."""
        period = worker.settings.period
        return worker.origin + math.ceil((at - worker.origin) / period - _EPSILON) * period

    def visible_instance(self, at: float) -> _Instance | None:
        return next((i for i in reversed(self.instances) if i.visible <= at), None)

    def tick(self, worker: _Worker, generation: int, *, by_sync: bool = False) -> None:
        """worker.go doProbe, once, then wait for the ticker."""
        if generation != worker.generation:
            return
        tick = self.now
        done = tick + self.probe_once(worker, tick, by_sync=by_sync)
        period = worker.settings.period
        passed = int((tick - worker.origin) / period + _EPSILON)
        following = worker.origin + (passed + 1) * period
        # A probe longer than the period gets the tick that fired meanwhile at once.
        self.at(max(done, following), partial(self.tick, worker, generation))

    def probe_once(self, worker: _Worker, tick: float, *, by_sync: bool = False) -> float:
        """One run of `worker` at `tick`: its duration. `by_sync`: a pod sync's manual
        trigger, which comes after kubelet's sync loop stored the latest probe results."""
        latest = self.instances[-1] if self.instances else None
        near = latest is not None and abs(tick - latest.visible) < KNIFE_EDGE
        old_enough = latest is not None and tick - latest.start >= worker.settings.initial_delay
        if near and old_enough and worker.kind != "readiness":
            self.close_call(tick, f"a {worker.kind} tick and kubelet's first sight of a container")
        instance = self.visible_instance(tick)
        worker.first_look = instance is not None and worker.seen is not instance
        if instance is None:
            return 0.0
        if worker.seen is not instance:  # a new container: initial value, resume probing
            worker.seen, worker.on_hold = instance, False
            worker.result = {"readiness": False, "liveness": True}.get(worker.kind)
            if worker.kind == "readiness":
                self.at(tick + self.follow_up(), self.pod_sync)
                self.set_ready(False, tick, "new container")
        if worker.on_hold:
            return 0.0
        if instance.exit is not None and instance.exit <= tick:
            return 0.0
        age = tick - instance.start
        delay = worker.settings.initial_delay
        # The status keeps StartedAt to the second (status_manager normalizeStatus), so the
        # worker's age is the true age plus how far into its second the start fell.
        seen_age = age + instance.second
        if delay and abs(seen_age - delay) < KNIFE_EDGE:
            self.close_call(tick, f"a {worker.kind} tick and initialDelaySeconds")
        if int(seen_age + _EPSILON) < delay:
            return 0.0
        reset = instance.reset
        if reset is not None and worker.kind != "startup" and abs(tick - reset) < KNIFE_EDGE:
            self.close_call(tick, f"a {worker.kind} tick and the startup worker's first look")
        started = self.seen_started(instance, tick, worker.kind, by_sync=by_sync)
        if (worker.kind == "startup") == started:
            return 0.0
        if abs(age - self.app.boot) < KNIFE_EDGE:
            self.close_call(tick, f"a {worker.kind} probe and the app's boot")
        outcome = probe_outcome(worker.probe, self.container, self.app, age)
        instance.busy_until = max(instance.busy_until, tick + outcome.busy)
        done = tick + outcome.duration
        if outcome.ok is None:
            self.event(done, "errored", f"{worker.kind}: {outcome.why}")
            return outcome.duration
        self.count(worker, instance, outcome, done)
        return outcome.duration

    def seen_started(self, instance: _Instance, tick: float, kind: str, *, by_sync: bool) -> bool:
        """Whether a `kind` worker running at `tick` sees the container started. With a
        startup probe the workers read it from the status manager, which kubelet's sync loop
        sets after the startup result: a ticker firing in the very instant the startup probe
        passes (workers of one period tick together) still sees it not started, while the
        pod sync that result causes, and its manual trigger, come after it. An inherited
        Started holds until the startup worker's first look; the startup worker itself
        read it before resetting it, the others race that reset."""
        if instance.reset is not None and tick < instance.reset + _EPSILON:
            if tick < instance.reset - _EPSILON or kind == "startup":
                return True
            return instance.reads_first and not by_sync
        if instance.started is None:
            return False
        if by_sync or self.worker("startup") is None:
            return instance.started <= tick
        return instance.started < tick

    def count(self, worker: _Worker, instance: _Instance, outcome: Outcome, done: float) -> None:
        ok = bool(outcome.ok)
        if not ok:
            self.event(done, "unhealthy", f"{worker.kind}: {outcome.why}")
        if worker.last_ok == ok:
            worker.run += 1
        else:
            worker.last_ok, worker.run = ok, 1
        settings = worker.settings
        threshold = settings.success_threshold if ok else settings.failure_threshold
        if worker.run >= threshold:
            self.act(worker, instance, ok, done)

    def act(self, worker: _Worker, instance: _Instance, ok: bool, at: float) -> None:
        """The result is set (kubelet handles the update with a sync)."""
        changed, worker.result = worker.result != ok, ok
        if worker.kind == "readiness":
            if changed:
                self.later(at + self.lat("publish"), ok, "readiness")
                if not ok:
                    self.at(at, self.pod_sync)
            return
        if worker.kind == "liveness" and ok:
            return
        worker.on_hold, worker.run = True, 0
        if worker.kind == "startup" and ok:
            instance.started = at
            # The first look's new result asked for a sync in the same instant; the pass's
            # sync, which computes Ready, waits for a relist newer than that one.
            synced = at + (self.lat("relist_wait") if worker.first_look else 0.0)
            if self.worker("readiness") is None:
                self.later(synced + self.lat("publish"), True, "startup")
            self.at(synced, self.pod_sync)
            return
        if instance.killed is None:
            self.at(at, self.pod_sync)  # the kill's sync probes readiness first
            self.kill(instance, at, worker.kind, worker.probe)


def predict_pod(
    pod: PodUnderTest,
    *,
    duration: float,
    apps: AppFor,
    node: Node | None = None,
    kubelet: Kubelet | None = None,
    rng: random.Random | None = None,
) -> PodTimeline:
    """Every container's timeline for ``duration`` seconds after the first start; with
    ``rng``, every node latency is drawn from its range (one sampled path)."""
    latency = Latencies(node or Node(), rng)
    kubelet = kubelet or Kubelet()
    containers = []
    offset = 0.0
    for container in pod.spec["containers"]:
        app = apps(container, latency)
        containers.append(
            _Container(
                pod, container, app, latency, kubelet, first_start=offset, duration=duration
            ).run()
        )
        offset += latency("create")
    return PodTimeline(pod.name, containers)
