"""When kubelet probed, from the local cluster's kubelet log.

kubelet logs every failed probe at verbosity 1 (``prober.go``, "Probe failed"), which the
local cluster runs it with, to the microsecond. A probe that can never pass therefore leaves
a line for every run kubelet made of it: the ones a pod sync triggers after a start as well
as the ticker's. The node calibration reads them to measure when kubelet first probes a new
container and when it probes it again, the two moments kubelet's own triggers decide.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

# klog's text header: severity, MMDD, local wall-clock time, thread id, file:line.
_PROBE_FAILED = re.compile(
    r'^[IWE](\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6})\s+\d+ \S+\] "Probe failed" '
    r'probeType="(\w+)" pod="([^"/]+)/([^"]+)" podUID="[^"]*" containerName="([^"]+)"'
)


@dataclass(frozen=True)
class ProbeFailure:
    """One failed probe run: when kubelet logged it (seconds since the epoch) and of what."""

    at: float
    kind: str  # "readiness", "liveness" or "startup"
    pod: str
    container: str


def probe_failures(lines: Iterable[str], namespace: str, *, year: int) -> list[ProbeFailure]:
    """The failed probes of pods in `namespace`, in log order. klog leaves the year out, so
    the caller gives it; its times are the machine's local time, read as such."""
    found = []
    for line in lines:
        match = _PROBE_FAILED.match(line)
        if match is None or match[8] != namespace:
            continue
        month, day, hour, minute, second, micro = (int(match[i]) for i in range(1, 7))
        at = datetime(year, month, day, hour, minute, second, micro).timestamp()
        found.append(ProbeFailure(at, match[7].lower(), match[9], match[10]))
    return found


def read_probe_failures(path: Path, namespace: str, *, year: int) -> list[ProbeFailure]:
    """`probe_failures` of a kubelet log file (it may be large: read line by line)."""
    with path.open(errors="replace") as log:
        return probe_failures(log, namespace, year=year)
