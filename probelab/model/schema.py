"""The timeline both ``predict`` and ``observe`` print, in seconds since the first start.

One schema for the model's forecast and the cluster's observation, so the two can be
compared field by field (``benchmarks/predict_accuracy.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """Something that happened to a container: ``kind`` is one of started, unhealthy,
    errored, killing, back-off, ready, not-ready; ``reason`` the probe or cause."""

    at: float
    kind: str
    reason: str


@dataclass(frozen=True)
class Branch:
    """One distinct path a real node can take (restart times rounded to the second)."""

    probability: float
    restarts_at: tuple[float, ...]
    crash_loop_back_off_at: float | None
    ready_at: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "probability": round(self.probability, 4),
            "restarts_at": list(self.restarts_at),
            "crash_loop_back_off_at": self.crash_loop_back_off_at,
            "ready_at": self.ready_at,
        }


@dataclass(frozen=True)
class Spread:
    """Across sampled paths: each restart's and the first CrashLoopBackOff's min and max."""

    restarts_at: tuple[tuple[float, float], ...]
    crash_loop_back_off_at: tuple[float, float] | None
    ready_at: tuple[float, float] | None

    def as_json(self) -> dict[str, Any]:
        def pair(span: tuple[float, float] | None) -> list[float] | None:
            return None if span is None else [round(span[0], 2), round(span[1], 2)]

        return {
            "restarts_at": [pair(span) for span in self.restarts_at],
            "crash_loop_back_off_at": pair(self.crash_loop_back_off_at),
            "ready_at": pair(self.ready_at),
        }


@dataclass
class ContainerTimeline:
    """One container's story in seconds since the pod's first container start."""

    name: str
    restarts_at: list[float] = field(default_factory=list)
    crash_loop_back_off_at: float | None = None
    ready_at: float | None = None
    events: list[Event] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # where the node's timing decides
    assumptions: list[str] = field(default_factory=list)  # what the model could not know
    spread: Spread | None = None
    branches: list[Branch] = field(default_factory=list)

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
        found: dict[str, Any] = {
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
            "assumptions": self.assumptions,
        }
        if self.spread is not None:
            found["spread"] = self.spread.as_json()
            found["branches"] = [b.as_json() for b in self.branches]
        return found


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
    kubelet: str = ""  # the version whose rules were used (predict) or seen (observe)

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "duration": self.duration,
            "kubelet": self.kubelet,
            "pods": [
                {"name": p.name, "containers": [c.as_json() for c in p.containers]}
                for p in self.pods
            ],
        }

    def assumptions(self) -> list[str]:
        return [a for p in self.pods for c in p.containers for a in c.assumptions]

    def render(self, fmt: str) -> str:
        if fmt == "json":
            return json.dumps(self.as_json(), indent=2)
        head = f"{self.source}: first {self.duration:g}s after the first container start"
        lines = [head + (f" (kubelet {self.kubelet})" if self.kubelet else "")]
        for pod in self.pods:
            for c in pod.containers:
                lines += _render_container(pod.name, c)
        return "\n".join(lines)


def _render_container(pod: str, c: ContainerTimeline) -> list[str]:
    restarts = ", ".join(f"{t:.1f}" for t in c.restarts_at) or "none"
    lines = [
        f"pod/{pod} container {c.name}",
        f"  restarts ({len(c.restarts_at)}): {restarts}",
        f"  CrashLoopBackOff: {_text(c.crash_loop_back_off_at)}",
        f"  Ready: {_text(c.ready_at)}",
        *(f"  assumed: {note}" for note in c.assumptions),
        *(f"  note: {note}" for note in c.notes),
    ]
    if c.branches:
        top = c.branches[0]
        lines.append(f"  likeliest path ({top.probability:.0%}): {_path(top)}")
        shapes = _shapes(c.branches)
        if len(shapes) > 1:  # the close calls: where the story itself changes
            lines += [
                f"  {odds:4.0%} of paths: {shape}, e.g. {_path(b)}" for shape, odds, b in shapes[:4]
            ]
    lines += [
        f"  {e.at:7.1f}s  {e.kind:<10} {e.reason}" for e in sorted(c.events, key=lambda e: e.at)
    ]
    return lines


def _shapes(branches: list[Branch]) -> list[tuple[str, float, Branch]]:
    """Branches grouped by how the story goes (restarts before CrashLoopBackOff, restarts
    in all, Ready or not), with their summed odds and the likeliest example, likeliest first."""
    groups: dict[str, tuple[float, Branch]] = {}
    for branch in branches:  # most likely first, so the first seen is the example
        clbo = branch.crash_loop_back_off_at
        before = sum(1 for t in branch.restarts_at if clbo is None or t < clbo)
        shape = f"{len(branch.restarts_at)} restart(s)"
        if clbo is not None:
            shape += f", {before} before CrashLoopBackOff"
        shape += ", Ready" if branch.ready_at is not None else ""
        odds, example = groups.get(shape, (0.0, branch))
        groups[shape] = (odds + branch.probability, example)
    return sorted(((k, p, b) for k, (p, b) in groups.items()), key=lambda g: -g[1])


def _path(branch: Branch) -> str:
    restarts = ", ".join(f"{t:g}" for t in branch.restarts_at) or "no restart"
    clbo = branch.crash_loop_back_off_at
    return f"restarts at {restarts}" + ("" if clbo is None else f"; CrashLoopBackOff at {clbo:g}")


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _text(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f}s"
