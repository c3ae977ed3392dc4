"""How long kubelet may take to do what a lab waits for, derived from probe settings.

Every deadline is an upper bound computed from the manifest's probes and kubelet's own
timing rules, plus the small stated slack :data:`KUBELET_LAG`, so a lab waits as long as
kubelet can need and no longer. The rules modelled (kubelet source, in words):

* Probe worker (``pkg/kubelet/prober/worker.go``): one worker per probe per container,
  created with the pod. It ticks every ``periodSeconds`` for the pod's whole life, with a
  phase unrelated to when a container (re)starts. On each tick it skips a container that
  has run for less than ``initialDelaySeconds`` and, except for the startup probe, one that
  has not passed its startup probe. A result counts once ``failureThreshold`` (or
  ``successThreshold``) consecutive probes agree; a probe takes at most ``timeoutSeconds``.
  So the first real probe lands within one period after the initial delay.
* Restart back-off (``kuberuntime_manager.go`` ``doBackOff`` with
  ``client-go/util/flowcontrol`` ``Backoff``): before starting a container kubelet looks
  at the newest *exited* instance in the pod status it read when the sync began. None:
  start. Otherwise, if less than the current back-off has passed since that instance
  finished, wait (CrashLoopBackOff); else double the back-off (first 10 s, capped at
  300 s, reset after 600 s without restarts) and start.
* A liveness or startup failure kills and restarts the container within one sync, whose
  status still shows the *previous* instance as the newest exited one. The back-off is
  therefore compared with how long the killed container ran, which shifts the schedule by
  one restart against a container that exits by itself.
* A pod left in back-off is synced again after kubelet's error retry, 10 s plus up to 50 %
  jitter (``pod_workers.go``); newer kubelets retry at the back-off's expiry, sooner.

Assumed: kubelet defaults (generic PLEG relisting every second, no CrashLoopBackOff
feature gates), a node that is not starved, and probes whose failures are definite.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from probelab.errors import ProbelabError

KUBELET_LAG = 2.0
"""Slack for kubelet noticing a container change and publishing it: the generic PLEG
relists every second, then a pod sync writes the status. Two seconds covers one relist
plus the sync (and creating a container from an image already on the node)."""

RESTART_BACKOFF_INITIAL = 10.0
"""kubelet's first container restart back-off (``backOffPeriod``)."""

RESTART_BACKOFF_MAX = 300.0
"""kubelet's cap on the restart back-off (``MaxContainerBackOff``)."""

BACKOFF_RETRY_MAX = 15.0
"""Longest wait before kubelet re-syncs a pod in back-off: 10 s with 50 % jitter."""

MIN_STOP_GRACE = 2.0
"""kubelet never allows a container less than this between SIGTERM and SIGKILL."""


@dataclass(frozen=True)
class ProbeSettings:
    """A probe's timing fields, with the API's defaults for any left out."""

    initial_delay: int = 0
    period: int = 10
    timeout: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def from_manifest(cls, probe: Mapping[str, Any] | None) -> ProbeSettings | None:
        """Read a manifest's probe mapping; None (no such probe) stays None."""
        return None if probe is None else _parse(probe)


Probe = ProbeSettings | Mapping[str, Any]
"""Either parsed settings or a probe mapping straight from a manifest."""

# Manifest field -> (ProbeSettings field, smallest value the API accepts).
_FIELDS: dict[str, tuple[str, int]] = {
    "initialDelaySeconds": ("initial_delay", 0),
    "periodSeconds": ("period", 1),
    "timeoutSeconds": ("timeout", 1),
    "successThreshold": ("success_threshold", 1),
    "failureThreshold": ("failure_threshold", 1),
}


def _parse(probe: Mapping[str, Any]) -> ProbeSettings:
    values: dict[str, int] = {}
    for key, (attribute, minimum) in _FIELDS.items():
        if key not in probe:
            continue
        value = probe[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ProbelabError(f"probe {key} must be an integer >= {minimum}, got {value!r}")
        values[attribute] = value
    return ProbeSettings(**values)


def _settings(probe: Probe) -> ProbeSettings:
    return probe if isinstance(probe, ProbeSettings) else _parse(probe)


def _decided_by(probe: ProbeSettings, gate: float, consecutive: int) -> float:
    """When ``consecutive`` agreeing results exist, for a probe allowed to run from ``gate``.

    The worker's first tick at or after max(initialDelay, gate) comes within one period;
    the rest follow a period apart, and the last may take the whole timeout.
    """
    return max(probe.initial_delay, gate) + consecutive * probe.period + probe.timeout


def startup_budget(startup: Probe) -> float:
    """Latest time after container start by which a failing startup probe gets it killed.

    Rule: startup probes run from initialDelaySeconds; failureThreshold consecutive
    failures make kubelet kill the container. A startup probe that passes does so by then.
    """
    return _decided_by(_settings(startup), KUBELET_LAG, _settings(startup).failure_threshold)


def liveness_kill_after(liveness: Probe, startup: Probe | None = None) -> float:
    """Latest time after container start at which kubelet decides to kill, for a liveness
    probe that always fails.

    Rule: liveness is not probed until the container has started (its startup probe, if
    any, has passed, which :func:`startup_budget` bounds) nor before initialDelaySeconds;
    then failureThreshold consecutive failures trigger the kill.
    """
    probe = _settings(liveness)
    gate = KUBELET_LAG if startup is None else startup_budget(startup) + KUBELET_LAG
    return _decided_by(probe, gate, probe.failure_threshold)


def liveness_survived(liveness: Probe, startup: Probe | None = None) -> float:
    """How long a container must stay up to show its liveness probe passes.

    Rule: a probe that always failed would have killed it by :func:`liveness_kill_after`;
    one more period is kept spare, so a borderline tick cannot slip past the window.
    """
    return liveness_kill_after(liveness, startup) + _settings(liveness).period


def liveness_kill_earliest(liveness: Probe, startup: Probe | None = None) -> float:
    """Earliest time after container start at which kubelet can kill: the shortest run.

    Rule: no probe runs before its initialDelaySeconds, and failureThreshold failures a
    period apart are needed. With a startup probe, either it fails for good or liveness
    starts no earlier than the startup probe's first chance to pass.
    """
    live = _settings(liveness)
    if startup is None:
        return float(live.initial_delay + (live.failure_threshold - 1) * live.period)
    start = _settings(startup)
    startup_kill = start.initial_delay + (start.failure_threshold - 1) * start.period
    after_start = max(live.initial_delay, start.initial_delay)
    return float(min(startup_kill, after_start + (live.failure_threshold - 1) * live.period))


def backoff_before_restart(n: int, *, after_probe_kill: bool = True) -> float:
    """kubelet's restart back-off window for restart number ``n`` (1 = the first restart).

    Rule (doBackOff): the window is compared with the time since the newest exited
    instance finished; if that is shorter, kubelet waits the window from the exit that
    just happened. For a container that exits by itself the first restart is immediate and
    restart n waits 10 s * 2**(n-2), capped at 300 s. After a liveness or startup kill
    (the default here) the same windows apply one restart later (restart n >= 3 uses
    10 s * 2**(n-3)) and count from the previous instance's exit, so a container that
    ran longer than the window restarts at once.
    """
    if n < 1:
        raise ValueError(f"restart numbers start at 1, got {n}")
    first_with_window = 3 if after_probe_kill else 2
    if n < first_with_window:
        return 0.0
    doublings = min(n - first_with_window, 64)  # far past the cap; keeps the float finite
    return min(RESTART_BACKOFF_INITIAL * 2.0**doublings, RESTART_BACKOFF_MAX)


def time_to_restarts(
    n: int, liveness: Probe, grace_seconds: float, startup: Probe | None = None
) -> float:
    """Upper bound, in seconds from the first container start, until restartCount is ``n``,
    for a liveness probe that always fails.

    Each restart costs the longest run before the kill decision, the stop (up to
    ``grace_seconds``, the pod's terminationGracePeriodSeconds, never less than kubelet's
    2 s), starting the next instance, and, when the window could exceed the shortest
    possible run, the back-off window plus kubelet's retry delay.
    """
    if n < 0:
        raise ValueError(f"restart count cannot be negative, got {n}")
    run = liveness_kill_after(liveness, startup)
    shortest_run = liveness_kill_earliest(liveness, startup)
    per_restart = run + max(grace_seconds, MIN_STOP_GRACE) + KUBELET_LAG
    total = 0.0
    for restart in range(1, n + 1):
        total += per_restart
        window = backoff_before_restart(restart)
        if window > shortest_run:
            total += window + BACKOFF_RETRY_MAX
    return total


def time_to_crash_loop(
    liveness: Probe, grace_seconds: float, startup: Probe | None = None
) -> float:
    """Upper bound, in seconds from the first container start, until the pod shows
    CrashLoopBackOff, for a liveness probe that always fails.

    Rule: a kill ends in back-off when the window exceeds the time since the previous
    instance exited. While restarts are immediate that time is at most one start, one
    longest run and one stop, so the first restart whose window exceeds that is sure to
    back off (an earlier one may already have). The status shows the reason once kubelet
    has noticed the exit.
    """
    run = liveness_kill_after(liveness, startup)
    stop = max(grace_seconds, MIN_STOP_GRACE)
    longest_gap = KUBELET_LAG + run + stop
    restart = 1
    while (window := backoff_before_restart(restart)) <= longest_gap:
        if window >= RESTART_BACKOFF_MAX:
            raise ValueError(
                f"a container that runs {longest_gap:g}s before its kill never surely backs off"
            )
        restart += 1
    return time_to_restarts(restart - 1, liveness, grace_seconds, startup) + longest_gap


def readiness_within(
    readiness: Probe, *, serving_after: float = 0.0, startup: Probe | None = None
) -> float:
    """Latest time after container start at which the pod is Ready, for an app whose
    readiness (and startup) endpoint answers successfully from ``serving_after`` seconds on.

    Rule: readiness starts as failed and is not probed before initialDelaySeconds nor
    before the container has started (startup probe passed: its first tick after the app
    serves); successThreshold consecutive successes make it Ready.
    """
    probe = _settings(readiness)
    gate = max(serving_after, KUBELET_LAG)
    if startup is not None:
        start = _settings(startup)
        gate = _decided_by(start, gate, 1) + KUBELET_LAG
    return _decided_by(probe, gate, probe.success_threshold) + KUBELET_LAG
