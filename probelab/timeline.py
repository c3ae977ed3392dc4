"""What the watches saw in one namespace, and the one way probelab waits for it.

Watch threads append pod and event observations; tests read them and block in
:meth:`Timeline.wait_until`, which wakes on every append instead of polling. When a wait
times out, the error carries :meth:`Timeline.render`: the ``kubectl get pod -w`` and event
listing a student would have looked at, so a failed lab explains itself.

Kubernetes model objects are converted here, once, into small frozen records, so nothing
downstream depends on the client's optional-everything attribute style.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from kubernetes.client import (
    CoreV1Event,
    V1ContainerStatus,
    V1EndpointSlice,
    V1ObjectMeta,
    V1Pod,
    V1PodStatus,
)

from probelab.errors import WaitAborted, WaitTimeout
from probelab.i18n import _

T = TypeVar("T")


@dataclass(frozen=True)
class ContainerSnapshot:
    """One container's status at one moment."""

    name: str
    ready: bool
    restart_count: int
    state: str  # "waiting" | "running" | "terminated" | "unknown" (no status reported yet)
    reason: str | None  # the waiting or terminated reason: CrashLoopBackOff, Completed, Error...
    message: str | None
    started_at: datetime | None  # state.running.startedAt
    last_terminated_reason: str | None  # lastState.terminated.reason
    last_exit_code: int | None
    last_finished_at: datetime | None = None  # lastState.terminated.finishedAt: "(5s ago)"


@dataclass(frozen=True)
class PodObservation:
    """A pod as one watch event showed it."""

    at: datetime  # when probelab received it (aware, UTC)
    pod: str
    phase: str
    ready: bool  # the pod's Ready condition
    containers: tuple[ContainerSnapshot, ...]
    deleted: bool = False
    terminating: bool = False  # metadata.deletionTimestamp was set
    uid: str = ""  # another uid under the same name is another pod

    @property
    def status(self) -> str:
        """The STATUS column of ``kubectl get pod``, for the lab's single-level pods."""
        if self.terminating:
            return "Terminating"
        for container in self.containers:
            if container.state in ("waiting", "terminated") and container.reason:
                return container.reason
        return self.phase

    @property
    def restarts(self) -> int:
        return sum(c.restart_count for c in self.containers)

    @property
    def ready_text(self) -> str:
        """READY as kubectl prints it: running-and-ready containers over all containers."""
        ready = sum(1 for c in self.containers if c.ready and c.state == "running")
        return f"{ready}/{len(self.containers)}"


@dataclass(frozen=True)
class EventObservation:
    """One Kubernetes event (or a later update of it, with a higher count)."""

    at: datetime  # the event's own time, see event_time
    pod: str  # involvedObject.name
    type: str
    reason: str
    message: str
    count: int
    kind: str = "Pod"  # involvedObject.kind


@dataclass(frozen=True)
class EndpointObservation:
    """One EndpointSlice as a watch delivered it: which addresses its Service sends to."""

    at: datetime
    service: str
    endpoints: tuple[tuple[str, bool], ...]  # (address, ready)

    def lists(self, address: str, *, ready: bool) -> bool:
        return (address, ready) in self.endpoints


class Timeline:
    """Append-only, thread-safe record of one namespace's pods, events and endpoints."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._version = 0  # bumped on every append, so waiters never miss one
        self._pods: list[PodObservation] = []
        self._events: list[EventObservation] = []
        self._event_keys: set[tuple[object, ...]] = set()
        # When the watches could not reach the API server: (since, until or None while open).
        self._outages: list[tuple[datetime, datetime | None]] = []
        self._slices: list[EndpointObservation] = []
        self._namespace_deleted: datetime | None = None  # when its deletion was first seen

    def add_pod(
        self, pod: V1Pod, *, deleted: bool = False, at: datetime | None = None
    ) -> PodObservation:
        """Record a pod as a watch delivered it; ``at`` defaults to now."""
        observation = _pod_observation(pod, deleted=deleted, at=_aware(at or datetime.now(UTC)))
        with self._changed:
            self._pods.append(observation)
            self._version += 1
            self._changed.notify_all()
        return observation

    def api_unreachable(self, since: datetime | None) -> None:
        """The watches lost the API server at `since`; None: they reach it again now."""
        with self._changed:
            open_outage = bool(self._outages) and self._outages[-1][1] is None
            if since is None and open_outage:
                self._outages[-1] = (self._outages[-1][0], datetime.now(UTC))
            elif since is not None and not open_outage:
                self._outages.append((_aware(since), None))

    def namespace_deleting(self) -> None:
        """The namespace is terminating (or gone): nothing in it can still come true."""
        with self._changed:
            if self._namespace_deleted is None:
                self._namespace_deleted = datetime.now(UTC)
                self._version += 1
                self._changed.notify_all()

    @property
    def namespace_deleted(self) -> datetime | None:
        with self._changed:
            return self._namespace_deleted

    def unreachable_seconds(self, start: datetime, end: datetime) -> tuple[float, bool]:
        """Seconds between `start` and `end` the API server was unreachable, and whether it
        still is at `end`."""
        with self._changed:
            outages = list(self._outages)
        total = 0.0
        for since, until in outages:
            stop = min(until or end, end)
            total += max(0.0, (stop - max(since, start)).total_seconds())
        return total, bool(outages) and outages[-1][1] is None

    def add_event(self, event: CoreV1Event) -> EventObservation:
        """Record an event; a re-delivered identical event (watch restart) is not added twice."""
        observation = _event_observation(event)
        key = (event.metadata.uid or event.metadata.name, observation.count, observation.at)
        with self._changed:
            if key in self._event_keys:
                return observation
            self._event_keys.add(key)
            self._events.append(observation)
            self._version += 1
            self._changed.notify_all()
        return observation

    def add_slice(self, slice_: V1EndpointSlice) -> EndpointObservation:
        """Record an EndpointSlice (the Service it belongs to, its addresses and readiness)."""
        labels = (slice_.metadata.labels if slice_.metadata else None) or {}
        endpoints = tuple(
            (address, bool(e.conditions and e.conditions.ready))
            for e in slice_.endpoints or []
            for address in e.addresses or []
        )
        observation = EndpointObservation(
            datetime.now(UTC), str(labels.get("kubernetes.io/service-name", "")), endpoints
        )
        with self._changed:
            self._slices.append(observation)
            self._version += 1
            self._changed.notify_all()
        return observation

    def slices(self, service: str) -> list[EndpointObservation]:
        with self._changed:
            return [s for s in self._slices if s.service == service]

    def pods(self, name: str | None = None) -> list[PodObservation]:
        with self._changed:
            return [p for p in self._pods if name is None or p.pod == name]

    def events(
        self, pod: str | None = None, reason: str | None = None, contains: str | None = None
    ) -> list[EventObservation]:
        """Events in arrival order, filtered by object name, reason and message substring."""
        with self._changed:
            return [
                e
                for e in self._events
                if (pod is None or e.pod == pod)
                and (reason is None or e.reason == reason)
                and (contains is None or contains in e.message)
            ]

    def latest(self, pod: str) -> PodObservation | None:
        seen = self.pods(pod)
        return seen[-1] if seen else None

    def max_restarts(self, pod: str, container: str | None = None) -> int:
        """Highest restart count seen; the max, because a late watch event can be stale."""
        return max(
            (
                sum(c.restart_count for c in o.containers if container in (None, c.name))
                for o in self.pods(pod)
            ),
            default=0,
        )

    def first(self, pod: str, predicate: Callable[[PodObservation], bool]) -> PodObservation | None:
        return next((o for o in self.pods(pod) if predicate(o)), None)

    def first_start(self, pod: str) -> datetime | None:
        """Earliest container start seen: labs measure kubelet's timings from it."""
        starts = [c.started_at for o in self.pods(pod) for c in o.containers if c.started_at]
        return min(starts, default=None)

    def wait_until(
        self,
        check: Callable[[Timeline], T | None],
        *,
        timeout: float,
        what: str,
        gone: Callable[[Timeline], str | None] | None = None,
    ) -> T:
        """Return ``check``'s first truthy result, re-checking after every append.

        ``gone`` says why ``check`` can no longer come true (its pod deleted): the wait
        then fails at once with WaitAborted instead of at its deadline. ``check`` runs
        outside the lock, so it may itself read the timeline (or be slow) without
        blocking the watch threads.
        """
        deadline = time.monotonic() + timeout
        began = datetime.now(UTC)
        while True:
            with self._changed:
                seen = self._version
            result = check(self)
            if result:
                return result
            if gone is not None and (why := gone(self)):
                raise WaitAborted(f"{what}: {why}\n\n{self.render()}")
            with self._changed:
                while self._version == seen and (remaining := deadline - time.monotonic()) > 0:
                    self._changed.wait(remaining)
                timed_out = self._version == seen
            if timed_out:
                seen_not = _("{what}: not seen within {timeout}s").format(
                    what=what, timeout=f"{timeout:g}"
                )
                raise WaitTimeout(f"{seen_not}{self.outage_note(began)}\n\n{self.render()}")

    def outage_note(self, began: datetime) -> str:
        """Why nothing was seen, when the API server was away during the wait."""
        lost, ongoing = self.unreachable_seconds(began, datetime.now(UTC))
        if lost <= 0:
            return ""
        still = _(" and still is") if ongoing else ""
        return _("; the API server was unreachable for {seconds:.0f}s of it{still}").format(
            seconds=lost, still=still
        )

    def render(self, now: datetime | None = None) -> str:
        """Pods as ``kubectl get pod -w`` would have shown them, then events by time."""
        now = _aware(now or datetime.now(UTC))
        with self._changed:
            pods = list(self._pods)
            events = sorted(self._events, key=lambda e: e.at)  # stable: ties keep arrival order
            slices = list(self._slices)
        endpoints = (
            "\n\n"
            + _table(
                ("AGE", "SERVICE", "ENDPOINTS (ready)"),
                [(_age(now - s.at), s.service, _endpoints_text(s)) for s in slices],
                "endpoint slices",
            )
            if slices
            else ""
        )
        return (
            _table(("NAME", "READY", "STATUS", "RESTARTS", "AGE"), _pod_rows(pods), "pods")
            + "\n\n"
            + _table(
                ("AGE", "TYPE", "REASON", "OBJECT", "MESSAGE"),
                [
                    (
                        _age(now - e.at),
                        e.type,
                        e.reason,
                        f"{e.kind.lower()}/{e.pod}",
                        _one_line(e.message),
                    )
                    for e in events
                ],
                "events",
            )
            + endpoints
        )


def _endpoints_text(observation: EndpointObservation) -> str:
    shown = [
        f"{address} ({'ready' if ready else 'not ready'})"
        for address, ready in observation.endpoints
    ]
    return ", ".join(shown) or "<none>"


def _aware(moment: datetime) -> datetime:
    """Keep every time in UTC; a naive time would make ages silently wrong."""
    if moment.tzinfo is None:
        raise ValueError(f"timeline times must be timezone-aware, got {moment!r}")
    return moment.astimezone(UTC)


def _optional_time(moment: datetime | None) -> datetime | None:
    return _aware(moment) if moment is not None else None


def _container_snapshot(name: str, status: V1ContainerStatus | None) -> ContainerSnapshot:
    """Flatten a container status; None means kubelet has reported nothing for it yet."""
    state = status.state if status is not None else None
    kind, reason, message, started_at = "unknown", None, None, None
    if state is not None and state.running is not None:
        kind, started_at = "running", state.running.started_at
    elif state is not None and state.waiting is not None:
        kind, reason, message = "waiting", state.waiting.reason, state.waiting.message
    elif state is not None and state.terminated is not None:
        kind, reason, message = "terminated", state.terminated.reason, state.terminated.message
    last = status.last_state.terminated if status is not None and status.last_state else None
    return ContainerSnapshot(
        name=name,
        ready=status.ready if status is not None else False,
        restart_count=status.restart_count if status is not None else 0,
        state=kind,
        reason=reason,
        message=message,
        started_at=_optional_time(started_at),
        last_terminated_reason=last.reason if last else None,
        last_exit_code=last.exit_code if last else None,
        last_finished_at=_optional_time(last.finished_at) if last else None,
    )


def _pod_observation(pod: V1Pod, *, deleted: bool, at: datetime) -> PodObservation:
    """Containers follow the spec's order, so a container without status still counts in READY."""
    metadata = pod.metadata or V1ObjectMeta()
    status = pod.status or V1PodStatus()
    statuses = {s.name: s for s in status.container_statuses or []}
    names = [c.name for c in (pod.spec.containers if pod.spec else [])]
    names += [n for n in statuses if n not in names]
    return PodObservation(
        at=at,
        pod=metadata.name or "",
        phase=status.phase or "Unknown",
        ready=any(c.type == "Ready" and c.status == "True" for c in status.conditions or []),
        containers=tuple(_container_snapshot(n, statuses.get(n)) for n in names),
        deleted=deleted,
        terminating=metadata.deletion_timestamp is not None,
        uid=metadata.uid or "",
    )


def event_time(event: CoreV1Event) -> datetime:
    """The event's latest known occurrence, whichever API generation filled it in."""
    candidates = (
        event.series.last_observed_time if event.series else None,
        event.last_timestamp,
        event.event_time,
        event.first_timestamp,
        event.metadata.creation_timestamp,
    )
    moment = next((c for c in candidates if c is not None), None)
    return _aware(moment) if moment else datetime.now(UTC)  # timeless: use when we got it


def _event_observation(event: CoreV1Event) -> EventObservation:
    series_count = event.series.count if event.series else None
    return EventObservation(
        at=event_time(event),
        pod=event.involved_object.name or "",
        type=event.type or "",
        reason=event.reason or "",
        message=event.message or "",
        count=event.count or series_count or 1,
        kind=event.involved_object.kind or "Pod",
    )


def _pod_rows(pods: Sequence[PodObservation]) -> list[tuple[str, ...]]:
    """One row per observation that changes what a pod's row shows; AGE from first sight."""
    first_seen: dict[str, datetime] = {}
    shown: dict[str, tuple[object, ...]] = {}
    rows: list[tuple[str, ...]] = []
    for obs in pods:
        first = first_seen.setdefault(obs.pod, obs.at)
        visible = (obs.ready_text, obs.status, obs.restarts, obs.deleted)
        if shown.get(obs.pod) == visible:
            continue
        shown[obs.pod] = visible
        rows.append(
            (obs.pod, obs.ready_text, obs.status, _restarts_text(obs), _age(obs.at - first))
        )
    return rows


def _restarts_text(obs: PodObservation) -> str:
    """RESTARTS with kubectl's "(5s ago)" from the last container exit."""
    finished = [c.last_finished_at for c in obs.containers if c.last_finished_at]
    if not obs.restarts or not finished:
        return str(obs.restarts)
    return f"{obs.restarts} ({_age(obs.at - max(finished))} ago)"


def _age(delta: timedelta) -> str:
    """kubectl's short human durations: 42s, 3m13s, 25m, 4h10m."""
    seconds = max(0, int(delta.total_seconds()))  # clock skew can make a delta negative
    if seconds < 120:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 10:
        return f"{minutes}m{secs}s" if secs else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours, mins = divmod(minutes, 60)
    return f"{hours}h{mins}m" if mins and hours < 8 else f"{hours}h"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], noun: str) -> str:
    """Left-aligned columns three spaces apart, like kubectl's tabwriter."""
    if not rows:
        return f"(no {noun} seen)"
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    return "\n".join(
        "   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    )
