"""Deadlines for what a lab waits on, from the model: expected, and latest plus slack.

A lab waits for a moment of a pod's story (its n-th restart, CrashLoopBackOff, Ready) or
checks that something does *not* happen through the window in which it surely would have
(a healthy pod is not killed while a failing liveness probe would have killed it). Each
:class:`Forecast` holds the nominal node's time and the latest time over sampled nodes, a
slow node (:meth:`.node.Node.latest`) and one whose app boots as slowly as on a busy
machine, plus :data:`NODE_SLACK` and :data:`RESTART_SLACK` per restart on the way: a
kubelet much slower than its own rules then fails the lab.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from probelab.model.errors import ModelError
from probelab.model.node import Latencies, Node
from probelab.model.pods import PodUnderTest
from probelab.model.rules import Kubelet
from probelab.model.schema import ContainerTimeline
from probelab.model.simulate import AppFor, predict_pod

NODE_SLACK = 3.0
"""Seconds added to the latest modelled time: the API watch's delivery and a node
briefly busier than the sampled ranges."""
RESTART_SLACK = 1.0
"""Seconds more for every restart before the moment: each one is a kill, a stop, a create
and a start, all of which a busy node stretches past their sampled ranges."""
BUSY_APP_BOOT = 5.0
"""The lab app's boot on a busy node (Python imports compete for the CPU): measured here at
1.4 s with load average 13 and up to 7 s at 18, against 0.7 s when quiet. Deadlines allow a
boot this slow; a slower one fails the lab as it should."""
BUSY_APP_REBOOT = 2.0
SAMPLES = 60
SEED = 20_261_202
HORIZON = 1_200.0
Moment = Callable[[ContainerTimeline], float | None]


@dataclass(frozen=True)
class Forecast:
    """When something should happen, in seconds since the pod's first container start."""

    expected: float
    latest: float  # the deadline: latest modelled time plus NODE_SLACK

    def goal_bound(self) -> float:
        """Issue 10's ceiling for a lab deadline: 1.5 x expected + 10 s."""
        return 1.5 * self.expected + 10.0

    def within_goal(self) -> bool:
        return self.latest <= self.goal_bound()


def forecast(
    pod: PodUnderTest,
    moment: Moment,
    *,
    apps: AppFor,
    kubelet: Kubelet | None = None,
    container: str | None = None,
    what: str = "it",
) -> Forecast:
    """The expected and latest time at which ``moment`` first holds for the container."""
    index = pod.index_of(container)
    rng = random.Random(SEED)

    def at(node: Node, draw: random.Random | None) -> tuple[float, int]:
        timeline = predict_pod(
            pod, duration=HORIZON, apps=apps, node=node, kubelet=kubelet, rng=draw
        ).containers[index]
        found = moment(timeline)
        if found is None:
            raise ModelError(f"{pod.source}: {what} is not predicted within {HORIZON:g}s")
        return found, sum(1 for t in timeline.restarts_at if t <= found)

    node = Node()
    expected, _ = at(node, None)
    slow = node.latest()
    busy = replace(slow, app_boot=BUSY_APP_BOOT, app_reboot=BUSY_APP_REBOOT)
    nodes = [at(slow, None), at(busy, None), *(at(node, rng) for _ in range(SAMPLES))]
    worst, restarts = max(nodes)
    slack = NODE_SLACK + RESTART_SLACK * restarts
    return Forecast(expected, max(worst, expected) + slack)


def nth_restart(n: int) -> Moment:
    return lambda t: t.restarts_at[n - 1] if len(t.restarts_at) >= n else None


def crash_loop_back_off(t: ContainerTimeline) -> float | None:
    return t.crash_loop_back_off_at


def ready(t: ContainerTimeline) -> float | None:
    return t.ready_at


def first_kill(t: ContainerTimeline) -> float | None:
    return next((e.at for e in t.events if e.kind == "killing"), None)


def not_ready_after(t: ContainerTimeline, since: float) -> float | None:
    return next((e.at for e in t.events if e.kind == "not-ready" and e.at > since), None)


def not_ready_after_ready(t: ContainerTimeline) -> float | None:
    """The first time the container turned unready after it had been Ready."""
    return None if t.ready_at is None else not_ready_after(t, t.ready_at)


REFUSED_PORT = 1
"""A port nothing listens on: a probe aimed there always fails (connection refused)."""


def with_failing(pod: PodUnderTest, kind: str, container: str | None = None) -> PodUnderTest:
    """The pod with one container's ``kind`` probe always failing, everything else equal:
    the window in which a healthy probe proves itself is the one in which this pod's probe
    surely kills (or unreadies)."""
    index = pod.index_of(container)
    containers = [dict(c) for c in pod.spec["containers"]]
    target = containers[index]
    probe = target.get(f"{kind}Probe")
    if not isinstance(probe, Mapping):
        raise ModelError(f"{pod.source} has no {kind}Probe to check")
    timing = {k: v for k, v in probe.items() if k not in ("httpGet", "tcpSocket", "grpc", "exec")}
    target[f"{kind}Probe"] = {**timing, "tcpSocket": {"port": REFUSED_PORT}}
    return replace(pod, spec={**pod.spec, "containers": containers})


def with_liveness_like_readiness(pod: PodUnderTest, container: str | None = None) -> PodUnderTest:
    """The pod with liveness checking what readiness checks (its handler), timing kept:
    the probe that would restart the container when readiness' dependency goes away."""
    index = pod.index_of(container)
    containers = [dict(c) for c in pod.spec["containers"]]
    target = containers[index]
    liveness, readiness = target.get("livenessProbe"), target.get("readinessProbe")
    if not isinstance(liveness, Mapping) or not isinstance(readiness, Mapping):
        raise ModelError(f"{pod.source} needs both a livenessProbe and a readinessProbe")
    handler = {k: v for k, v in readiness.items() if k in ("httpGet", "tcpSocket", "grpc", "exec")}
    timing = {
        k: v for k, v in liveness.items() if k not in ("httpGet", "tcpSocket", "grpc", "exec")
    }
    target["livenessProbe"] = {**timing, **handler}
    return replace(pod, spec={**pod.spec, "containers": containers})


def active_deadline_end(
    pod: PodUnderTest, *, apps: AppFor, kubelet: Kubelet | None = None
) -> Forecast:
    """When a pod's activeDeadlineSeconds ends it (phase Failed), counted from its first
    container start: the deadline (kubelet counts it from the pod's start, a little
    earlier), the app's stop on SIGTERM or the whole grace period, one relist."""
    deadline = pod.spec.get("activeDeadlineSeconds")
    if isinstance(deadline, bool) or not isinstance(deadline, int) or deadline < 1:
        raise ModelError(f"{pod.source} has no activeDeadlineSeconds")
    kubelet = kubelet or Kubelet()
    grace = kubelet.grace(pod.spec.get("terminationGracePeriodSeconds"), None)

    def stop(node: Node) -> float:
        latency = Latencies(node)
        app = apps(pod.container(), latency)
        return grace if app.ignores_sigterm else min(latency("app_stop"), grace)

    nominal, slow = Node(), Node().latest()
    expected = deadline + stop(nominal) + nominal.notice
    return Forecast(expected, deadline + stop(slow) + slow.notice + NODE_SLACK)


def fixed_apps(apps: AppFor, **fields: Any) -> AppFor:
    """``apps`` with some App fields fixed (e.g. a health path failing from a moment)."""

    def choose(container: Mapping[str, Any], latency: Latencies) -> Any:
        return replace(apps(container, latency), **fields)

    return choose
