"""Exact container starts and stops from the local cluster's containerd log.

The API shows a container's start truncated to the second and one relist late; containerd
logs every CRI call kubelet makes with nanosecond timestamps. Reading those lines gives
observe and the node calibration the real moments: when kubelet asked for a pod's sandbox,
when each attempt of each container started, when a stop was asked for and returned.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

_TIME = re.compile(r'^time="([^"]+)"')
_META = r"&PodSandboxMetadata\{Name:([^,]+),Uid:[^,]*,Namespace:([^,]+),"
_SANDBOX_ASKED = re.compile("RunPodSandbox for " + _META)
_SANDBOX_ID = re.compile("RunPodSandbox for " + _META + r'[^}]*\} returns sandbox id \\"(\w+)\\"')
_CREATED = re.compile(
    r'CreateContainer within sandbox \\"(\w+)\\" for &ContainerMetadata\{Name:([^,]+),'
    r'Attempt:(\d+),\} returns container id \\"(\w+)\\"'
)
_STARTED = re.compile(r'StartContainer for \\"(\w+)\\" returns successfully')
_STOP_ASKED = re.compile(r'StopContainer for \\"(\w+)\\" with timeout')
_STOPPED = re.compile(r'StopContainer for \\"(\w+)\\" returns successfully')


@dataclass
class Attempt:
    """One run of one container, as containerd saw it (times in seconds since the epoch)."""

    container: str
    attempt: int
    started: float | None = None
    stop_asked: float | None = None
    stopped: float | None = None


@dataclass
class PodRuntime:
    namespace: str
    pod: str
    sandbox_asked: float | None = None
    attempts: list[Attempt] = field(default_factory=list)

    def starts(self, container: str) -> list[float]:
        """Each attempt's start, in attempt order."""
        found = sorted(
            (a for a in self.attempts if a.container == container), key=lambda a: a.attempt
        )
        return [a.started for a in found if a.started is not None]


def rfc3339_seconds(stamp: str) -> float:
    """Seconds since the epoch of an RFC 3339 UTC time with up to nanoseconds (containerd's
    log, the API's log timestamps); Python keeps microseconds. ValueError if it is none."""
    head, _, rest = stamp.partition(".")
    fraction = rest.rstrip("Z")[:6] if rest else "0"
    return datetime.fromisoformat(f"{head}.{fraction.ljust(6, '0')}+00:00").timestamp()


def read_runtime(lines: Iterable[str], namespace: str) -> dict[str, PodRuntime]:
    """Every pod of ``namespace`` in the log, by pod name."""
    pods: dict[str, PodRuntime] = {}
    sandboxes: dict[str, PodRuntime] = {}
    attempts: dict[str, Attempt] = {}
    for line in lines:
        stamp = _TIME.match(line)
        if stamp is None or "msg=" not in line:
            continue
        at = rfc3339_seconds(stamp[1])
        if match := _SANDBOX_ID.search(line):
            if match[2] == namespace:
                sandboxes[match[3]] = pods.setdefault(match[1], PodRuntime(namespace, match[1]))
        elif (match := _SANDBOX_ASKED.search(line)) and match[2] == namespace:
            pod = pods.setdefault(match[1], PodRuntime(namespace, match[1]))
            pod.sandbox_asked = pod.sandbox_asked or at
        elif (match := _CREATED.search(line)) and match[1] in sandboxes:
            attempt = Attempt(match[2], int(match[3]))
            sandboxes[match[1]].attempts.append(attempt)
            attempts[match[4]] = attempt
        elif (match := _STARTED.search(line)) and match[1] in attempts:
            attempts[match[1]].started = at
        elif (match := _STOP_ASKED.search(line)) and match[1] in attempts:
            attempts[match[1]].stop_asked = attempts[match[1]].stop_asked or at
        elif (match := _STOPPED.search(line)) and match[1] in attempts:
            attempts[match[1]].stopped = at
    return pods


def read_runtime_log(path: Path, namespace: str) -> dict[str, PodRuntime]:
    """``read_runtime`` over a log file; an absent log (another kind of cluster) is empty."""
    if not path.exists():
        return {}
    with path.open(errors="replace") as handle:
        return read_runtime(handle, namespace)
