"""Which of the model's paths an observed timeline took: the likeliest, a reported branch,
or none.

Issue 10's accuracy rule: an observation may leave the likeliest (nominal) path only by
taking a branch the odds report. A branch is judged whole, as a path: the same moments
(so the same restart count and the same CrashLoopBackOff or none) and every one of them
within the tolerance. Judging each moment against the sampled min and max instead would
accept a story stitched from moments of different branches that no node can take.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from probelab.model.odds import branch_key
from probelab.model.schema import ContainerTimeline
from probelab.model.waits import not_ready_after_ready


def moments(timeline: ContainerTimeline, probed: bool) -> dict[str, float]:
    """The moments a run is judged on: each restart, the first CrashLoopBackOff, the first
    Ready (only with a readiness or startup probe; otherwise it is the start as published)
    and the first not-ready after it."""
    found = {f"restart {n + 1}": at for n, at in enumerate(timeline.restarts_at)}
    if timeline.crash_loop_back_off_at is not None:
        found["CrashLoopBackOff"] = timeline.crash_loop_back_off_at
    if probed and timeline.ready_at is not None:
        found["Ready"] = timeline.ready_at
    unready = not_ready_after_ready(timeline)
    if unready is not None:
        found["not ready"] = unready
    return found


@dataclass(frozen=True)
class Path:
    """One path of the model: its moments and how often the sampled node took it."""

    label: str  # "nominal" or "branch"
    probability: float | None
    at: dict[str, float]


@dataclass(frozen=True)
class Match:
    """The path an observation followed, or ``None`` when it followed none."""

    path: Path | None

    @property
    def explained(self) -> bool:
        return self.path is not None


def branch_paths(paths: Sequence[ContainerTimeline], probed: bool) -> list[Path]:
    """The reported branches (:func:`.odds.branch_key`), most likely first, each with its
    members' mean time per moment (the branch key rounds to the second)."""
    groups: dict[object, list[ContainerTimeline]] = {}
    for path in paths:  # a branch's members share their moments' names too
        key = (branch_key(path), frozenset(moments(path, probed)))
        groups.setdefault(key, []).append(path)
    found = []
    for members in sorted(groups.values(), key=len, reverse=True):
        times: dict[str, list[float]] = {}
        for member in members:
            for what, at in moments(member, probed).items():
                times.setdefault(what, []).append(at)
        mean = {what: statistics.fmean(values) for what, values in times.items()}
        found.append(Path("branch", len(members) / len(paths), mean))
    return found


def follows(observed: dict[str, float], path: Path, tolerance: float) -> bool:
    """The same moments, each within ``tolerance`` seconds."""
    if set(observed) != set(path.at):
        return False
    return all(abs(observed[what] - path.at[what]) <= tolerance for what in observed)


def match(
    observed: dict[str, float], nominal: Path, branches: Sequence[Path], tolerance: float
) -> Match:
    """The nominal path if the observation followed it, else the likeliest branch it did."""
    for path in (nominal, *branches):
        if follows(observed, path, tolerance):
            return Match(path)
    return Match(None)
