"""kubelet's randomness, sampled: the spread of each moment and the distinct paths.

A real node's relist phase, requeue jitter, sync-loop pickup and runtime latencies vary
from run to run; where two of them race (a back-off window against a container's run, a
probe tick against the container's start), the pod's whole later story changes. Sampling
every latency from its range (:class:`.node.Node`) many times finds those paths and how
often each happens.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

from probelab.model.node import Node
from probelab.model.pods import PodUnderTest
from probelab.model.rules import Kubelet
from probelab.model.schema import Branch, ContainerTimeline, PodTimeline, Spread
from probelab.model.simulate import AppFor, predict_pod

MAX_SAMPLES = 100_000


def sample_pod(
    pod: PodUnderTest,
    *,
    duration: float,
    apps: AppFor,
    samples: int,
    seed: int,
    node: Node | None = None,
    kubelet: Kubelet | None = None,
) -> list[PodTimeline]:
    """``samples`` independent paths of the pod, reproducible from ``seed``."""
    rng = random.Random(seed)
    return [
        predict_pod(pod, duration=duration, apps=apps, node=node, kubelet=kubelet, rng=rng)
        for _ in range(samples)
    ]


def spread_of(paths: Sequence[ContainerTimeline]) -> Spread:
    """Per restart (by its number), the earliest and latest time any path had it."""
    longest = max((len(p.restarts_at) for p in paths), default=0)
    restarts = tuple(
        _span([p.restarts_at[i] for p in paths if len(p.restarts_at) > i]) for i in range(longest)
    )
    clbo = [p.crash_loop_back_off_at for p in paths if p.crash_loop_back_off_at is not None]
    ready = [p.ready_at for p in paths if p.ready_at is not None]
    return Spread(
        tuple(span for span in restarts if span is not None),
        _span(clbo),
        _span(ready),
    )


BranchKey = tuple[tuple[float, ...], float | None, float | None]


def branch_key(path: ContainerTimeline) -> BranchKey:
    """What tells branches apart: restart times, first CrashLoopBackOff and first Ready,
    rounded to the second."""
    return (
        tuple(float(round(t)) for t in path.restarts_at),
        _round(path.crash_loop_back_off_at),
        _round(path.ready_at),
    )


def branches_of(paths: Sequence[ContainerTimeline]) -> list[Branch]:
    """The distinct paths, times rounded to the second, most likely first."""
    keys = Counter(branch_key(p) for p in paths)
    total = sum(keys.values())
    return [
        Branch(count / total, restarts, clbo, ready)
        for (restarts, clbo, ready), count in keys.most_common()
    ]


def with_odds(nominal: PodTimeline, paths: Sequence[PodTimeline]) -> PodTimeline:
    """The nominal timeline, each container carrying the sampled spread and branches."""
    for index, container in enumerate(nominal.containers):
        sampled = [p.containers[index] for p in paths]
        container.spread = spread_of(sampled)
        container.branches = branches_of(sampled)
    return nominal


def _span(values: Sequence[float]) -> tuple[float, float] | None:
    return (min(values), max(values)) if values else None


def _round(value: float | None) -> float | None:
    return None if value is None else float(round(value))
