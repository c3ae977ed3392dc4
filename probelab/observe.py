"""What kubelet really did with a manifest, in the schema ``predict`` prints.

``observe`` applies the manifest's pods (a workload's pod template becomes a bare pod of
the workload's name) in a fresh namespace, records it with the labs' own
:class:`~probelab.lab.Lab` (a watch-fed :class:`~probelab.timeline.Timeline`) for
``duration`` seconds after the first container start, deletes the namespace (also on
Ctrl-C) and reads the timeline back into :class:`~probelab.predict.Timelines`.

Times are estimates, since the API reports container starts and events to the second:
a start is taken as when the watch saw it less kubelet's mean publishing lag
(:data:`PUBLISH_LAG`), kept inside the second the API reported; Ready and CrashLoopBackOff
are the moment the watch delivered them; events are the middle of their second.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from kubernetes import client

from probelab import kube
from probelab.clusters.local.runtime_log import PodRuntime, read_runtime_log
from probelab.errors import ProbelabError, WaitTimeout
from probelab.lab import Lab, Scenario, namespace_name
from probelab.model.lab_app import is_lab_image
from probelab.model.pods import PodUnderTest
from probelab.model.schema import ContainerTimeline, Event, PodTimeline, Timelines
from probelab.predict import read_pods
from probelab.registries.base import Registry
from probelab.runs import RunLease
from probelab.timeline import PodObservation, Timeline

PUBLISH_LAG = 0.6
"""A container start reaches the API after the next PLEG relist (every second, so half a
second on average) and a sync: 0.4 to 0.8 s in containerd's and kubelet's logs here."""
SETTLE = 2.0
"""Recording goes on this long past the window, for changes that happened inside it."""


def pod_object(pod: PodUnderTest, namespace: str, image: str | None) -> dict[str, Any]:
    """The bare Pod to create for a pod or a workload's template."""
    spec = dict(pod.spec)
    containers = []
    for container in spec["containers"]:
        container = dict(container)
        if is_lab_image(str(container.get("image", ""))):
            if image is None:
                raise ProbelabError(f"{pod.source} uses the lab image but no image was pushed")
            container["image"] = image
        containers.append(container)
    spec["containers"] = containers
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod.name, "namespace": namespace},
        "spec": spec,
    }


def observe(
    api: client.ApiClient,
    path: Path,
    *,
    duration: float,
    image: str,
    registry: Registry,
    namespace_prefix: str = "probelab-observe",
    runtime_log: Path | None = None,
) -> Timelines:
    """Run the manifest's pods on the cluster for ``duration`` seconds and report. With
    the cluster's containerd log, container starts are containerd's exact ones."""
    if duration <= 0:
        raise ProbelabError(f"--duration must be positive, got {duration:g}")
    pods = read_pods(path)
    with RunLease(api) as lease:
        lab = Lab(
            api,
            Scenario("observe", ()),
            namespace=namespace_name(namespace_prefix, "observe"),
            run_id=lease.run_id,
            image=image,
            registry=registry,
            manifests_dir=path.parent,
        )
        return _record(lab, pods, path, duration=duration, runtime_log=runtime_log)


def _record(
    lab: Lab, pods: list[PodUnderTest], path: Path, *, duration: float, runtime_log: Path | None
) -> Timelines:
    """Apply the pods in the lab's namespace and read what the watches saw."""
    api = lab.api
    image = lab.image
    try:
        lab.start()
        kube.apply(api, [pod_object(pod, lab.namespace, image) for pod in pods])
        first = _first_start(lab, pods)
        names = {pod.name for pod in pods}
        lab.assert_never(
            pods[0].name,
            lambda t: next((o for o in t.pods() if o.pod in names and o.deleted), None),
            budget=duration + SETTLE,
            what=f"a pod deleted while observing {path}",
        )
        exact = read_runtime_log(runtime_log, lab.namespace) if runtime_log else {}
        return read_timelines(lab.timeline, pods, duration=duration, origin=first, exact=exact)
    finally:
        lab.close()


def _first_start(lab: Lab, pods: list[PodUnderTest]) -> datetime:
    try:
        return lab.container_started(pods[0].name)
    except WaitTimeout:
        seen = lab.timeline.latest(pods[0].name)
        status = seen.status if seen else "never seen"
        raise ProbelabError(
            f"pod {pods[0].name} started no container in time (last status: {status})"
        ) from None


def read_timelines(
    timeline: Timeline,
    pods: list[PodUnderTest],
    *,
    duration: float,
    origin: datetime,
    exact: dict[str, PodRuntime] | None = None,
) -> Timelines:
    """The recorded timeline, in seconds since ``origin`` (a truncated start time); starts
    from containerd's log (``exact``) where it has every one the API showed."""
    result = []
    for pod in pods:
        observations = timeline.pods(pod.name)
        names = [str(c.get("name", "")) for c in pod.spec["containers"]]
        runtime = (exact or {}).get(pod.name)
        starts = {name: _starts(observations, name, runtime) for name in names}
        first = min((s[0] for s in starts.values() if s), default=None)
        zero = first if first is not None else _seconds(origin) + 0.5
        containers = [
            _container(timeline, pod.name, name, names, observations, starts[name], zero)
            for name in names
        ]
        for container in containers:
            container.clip(duration)
        result.append(PodTimeline(pod.name, containers))
    return Timelines("observe", duration, result)


def _seconds(moment: datetime) -> float:
    return moment.timestamp()


def _starts(
    observations: list[PodObservation], container: str, runtime: PodRuntime | None = None
) -> list[float]:
    """Each instance's start: containerd's own time when its log has them all, else when
    it was seen, less the publishing lag, within its second."""
    seen: dict[datetime, float] = {}
    for obs in observations:
        for c in obs.containers:
            if c.name == container and c.started_at is not None and c.state == "running":
                seen.setdefault(c.started_at, _seconds(obs.at))
    logged = runtime.starts(container) if runtime is not None else []
    if logged and len(logged) >= len(seen):
        return logged
    starts = []
    for started_at, arrival in sorted(seen.items()):
        floor = _seconds(started_at)
        starts.append(min(max(arrival - PUBLISH_LAG, floor), floor + 1.0))
    return starts


def _container(
    timeline: Timeline,
    pod: str,
    name: str,
    names: list[str],
    observations: list[PodObservation],
    starts: list[float],
    zero: float,
) -> ContainerTimeline:
    result = ContainerTimeline(name)
    result.restarts_at = [s - zero for s in starts[1:]]
    result.events = [
        Event(s - zero, "started", "restart" if i else "first start") for i, s in enumerate(starts)
    ]
    ready = False
    for obs in observations:
        snapshot = next((c for c in obs.containers if c.name == name), None)
        if snapshot is None:
            continue
        at = _seconds(obs.at) - zero
        now_ready = snapshot.ready and snapshot.state == "running"
        if now_ready != ready:
            ready = now_ready
            result.events.append(Event(at, "ready" if ready else "not-ready", "status"))
            if ready and result.ready_at is None:
                result.ready_at = at
        crash_loop = snapshot.state == "waiting" and snapshot.reason == "CrashLoopBackOff"
        if crash_loop and result.crash_loop_back_off_at is None:
            result.crash_loop_back_off_at = at
    seen: set[tuple[str, str, int]] = set()
    for event in timeline.events(pod=pod):
        kind_reason = _event(event.reason, event.message)
        owner = next((n for n in names if f"container {n} " in event.message), names[0])
        key = (event.reason, event.message, event.count)  # one occurrence per count
        if kind_reason is None or owner != name or key in seen:
            continue
        seen.add(key)
        result.events.append(Event(_seconds(event.at) + 0.5 - zero, *kind_reason))
    result.events.sort(key=lambda e: e.at)
    return result


def _event(reason: str, message: str) -> tuple[str, str] | None:
    """A kubelet event in the schema's words: (kind, reason)."""
    if reason == "Unhealthy":
        probe = message.split(" ", 1)[0].lower()
        return "unhealthy", f"{probe}: {message.split(': ', 1)[-1]}"
    if reason == "Killing":
        for probe in ("liveness", "startup"):
            if f"failed {probe} probe" in message:
                return "killing", probe
        return "killing", message
    if reason == "BackOff" and "restarting failed container" in message:
        return "back-off", "CrashLoopBackOff"
    return None
