"""Deadlines from probe settings, checked by hand, against the seed's run, and against a
step-by-step simulation of the kubelet rules they claim to bound."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from probelab.deadlines import (
    BACKOFF_RETRY_MAX,
    KUBELET_LAG,
    ProbeSettings,
    backoff_before_restart,
    liveness_kill_after,
    liveness_kill_earliest,
    liveness_survived,
    readiness_within,
    startup_budget,
    time_to_crash_loop,
    time_to_restarts,
)
from probelab.errors import ProbelabError

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"

# The seed's bad pod: port 8000, delay 3, period 5, timeout 1, failureThreshold 2.
BAD = {"httpGet": {"path": "/healthz", "port": 8000}, "initialDelaySeconds": 3,
       "periodSeconds": 5, "timeoutSeconds": 1, "failureThreshold": 2}  # fmt: skip


def container_probes(file: str) -> dict[str, ProbeSettings | None]:
    (pod,) = yaml.safe_load_all((MANIFESTS / file).read_text(encoding="utf-8"))
    container = pod["spec"]["containers"][0]
    kinds = ("livenessProbe", "readinessProbe", "startupProbe")
    return {kind: ProbeSettings.from_manifest(container.get(kind)) for kind in kinds}


def test_settings_apply_kubernetes_defaults() -> None:
    assert ProbeSettings.from_manifest({"httpGet": {"port": 8080}}) == ProbeSettings(
        initial_delay=0, period=10, timeout=1, success_threshold=1, failure_threshold=3
    )
    assert ProbeSettings.from_manifest(None) is None
    assert ProbeSettings.from_manifest(BAD) == ProbeSettings(3, 5, 1, 1, 2)


@pytest.mark.parametrize(
    "probe",
    [{"periodSeconds": 0}, {"timeoutSeconds": "2"}, {"initialDelaySeconds": -1},
     {"failureThreshold": True}, {"successThreshold": 1.5}],
)  # fmt: skip
def test_settings_reject_values_the_api_would_reject(probe: dict[str, object]) -> None:
    (key,) = probe
    with pytest.raises(ProbelabError, match=key):
        ProbeSettings.from_manifest(probe)


def test_liveness_kill_after_for_the_seed_bad_pod() -> None:
    # First probe within one period after the 3 s delay, a second one period later,
    # which may take the whole 1 s timeout: 3 + 5 + 5 + 1.
    assert liveness_kill_after(BAD) == 3 + 2 * 5 + 1
    assert liveness_kill_earliest(BAD) == 3 + 5
    assert liveness_kill_after(ProbeSettings.from_manifest(BAD) or ProbeSettings()) == 14


def test_a_pod_has_survived_liveness_one_period_after_it_would_have_been_killed() -> None:
    assert liveness_survived(BAD) == liveness_kill_after(BAD) + 5


def test_a_short_initial_delay_still_waits_for_kubelet_to_see_the_container() -> None:
    no_delay = {"periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 2}
    assert liveness_kill_after(no_delay) == KUBELET_LAG + 3 * 10 + 2


def test_startup_probe_gates_liveness() -> None:
    probes = container_probes("fastapi-slow-startup.yaml")
    startup, liveness = probes["startupProbe"], probes["livenessProbe"]
    assert startup is not None and liveness is not None
    budget = startup_budget(startup)
    assert budget == KUBELET_LAG + 20 * 2 + 1
    assert budget > 30  # the seed's 2 s x 20 covers its 30 s boot
    assert liveness_kill_after(liveness, startup) == budget + KUBELET_LAG + 3 * 10 + 2
    # Either the startup probe fails for good (after 19 periods) or liveness needs 2 more.
    assert liveness_kill_earliest(liveness, startup) == min(19 * 2, 0 + 2 * 10)


def test_the_negative_control_can_be_killed_before_its_30s_boot_ends() -> None:
    probes = container_probes("fastapi-slow-no-startup.yaml")
    assert probes["startupProbe"] is None
    liveness = probes["livenessProbe"]
    assert liveness is not None
    assert liveness_kill_earliest(liveness) == 20 < 30
    assert liveness_kill_after(liveness) == KUBELET_LAG + 30 + 2


@pytest.mark.parametrize(
    ("n", "after_kill", "self_exit"),
    [(1, 0, 0), (2, 0, 10), (3, 10, 20), (4, 20, 40), (5, 40, 80), (6, 80, 160),
     (7, 160, 300), (8, 300, 300), (50, 300, 300), (5000, 300, 300)],
)  # fmt: skip
def test_backoff_windows(n: int, after_kill: float, self_exit: float) -> None:
    assert backoff_before_restart(n) == after_kill
    assert backoff_before_restart(n, after_probe_kill=False) == self_exit


def test_backoff_rejects_restart_zero() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        backoff_before_restart(0)


def test_restart_bound_adds_backoff_only_where_it_can_happen() -> None:
    per_restart = 14 + 2 + KUBELET_LAG  # run, kubelet's minimum stop, next start
    assert time_to_restarts(0, BAD, grace_seconds=0) == 0
    assert time_to_restarts(2, BAD, grace_seconds=0) == 2 * per_restart
    # Restart 3's 10 s window exceeds the shortest run (8 s), so it may back off.
    assert time_to_restarts(3, BAD, grace_seconds=0) == 3 * per_restart + 10 + BACKOFF_RETRY_MAX
    long_delay = dict(BAD, initialDelaySeconds=30)  # runs >= 35 s: 10 s and 20 s windows pass
    assert time_to_restarts(4, long_delay, grace_seconds=2) == 4 * (30 + 10 + 1 + 2 + KUBELET_LAG)
    assert time_to_restarts(3, BAD, grace_seconds=30) > time_to_restarts(3, BAD, grace_seconds=2)


def test_bounds_cover_the_seed_run() -> None:
    """The seed's `kubectl get pod -w`: Running at 20s, restarts at 32, 41, 51, 90, 102 and
    193 s, CrashLoopBackOff first at 62 s. Measured from the first start (about 19 s)."""
    first_start = 19
    for n, seen_at in enumerate([32, 41, 51, 90, 102, 193], start=1):
        assert time_to_restarts(n, BAD, grace_seconds=2) >= seen_at - first_start
    assert time_to_crash_loop(BAD, grace_seconds=2) >= 62 - first_start
    # ...and they are bounds, not wishes: the fourth restart needed its 20 s window.
    assert time_to_restarts(4, BAD, grace_seconds=2) < 4 * 60


def test_crash_loop_bound_picks_the_first_window_longer_than_a_run() -> None:
    gap = KUBELET_LAG + 14 + 2  # 18 s between exits while restarts are immediate
    assert backoff_before_restart(4) > gap >= backoff_before_restart(3)
    assert time_to_crash_loop(BAD, grace_seconds=2) == time_to_restarts(3, BAD, 2) + gap


def test_crash_loop_is_never_certain_for_very_long_runs() -> None:
    with pytest.raises(ValueError, match="never surely backs off"):
        time_to_crash_loop({"initialDelaySeconds": 400}, grace_seconds=30)


def test_readiness_bounds() -> None:
    probes = container_probes("fastapi-liveness-good.yaml")
    readiness = probes["readinessProbe"]
    assert readiness is not None
    # Probed from kubelet's first look, one period of phase, up to the timeout, published.
    assert readiness_within(readiness) == KUBELET_LAG + 5 + 2 + KUBELET_LAG
    assert readiness_within(readiness, serving_after=10) == 10 + 5 + 2 + KUBELET_LAG

    slow = container_probes("fastapi-slow-startup.yaml")
    slow_ready, slow_startup = slow["readinessProbe"], slow["startupProbe"]
    assert slow_ready is not None and slow_startup is not None
    started = 31 + 2 + 1 + KUBELET_LAG  # startup's next tick after serving, its timeout, status
    assert readiness_within(slow_ready, serving_after=31, startup=slow_startup) == (
        started + 5 + 2 + KUBELET_LAG
    )


# --- A step-by-step model of kubelet, to check the closed forms are true upper bounds. ---


@dataclass
class Kubelet:
    """One pod, one container, a liveness probe that always fails, the rules in
    probelab.deadlines played out with random phases, lags and durations."""

    liveness: ProbeSettings
    startup: ProbeSettings | None
    grace: float
    rng: random.Random
    live_phase: float = field(init=False, default=0.0)
    startup_phase: float = field(init=False, default=0.0)
    restarts_at: list[float] = field(default_factory=list)
    crash_loop_at: float | None = None

    def __post_init__(self) -> None:
        self.live_phase = self.rng.uniform(0, self.liveness.period)
        if self.startup is not None:
            self.startup_phase = self.rng.uniform(0, self.startup.period)

    def pick(self, low: float, high: float) -> float:
        """Uniform, but half the time the worst case, so bounds get tested at their edge."""
        return high if self.rng.random() < 0.5 else self.rng.uniform(low, high)

    def lag(self) -> float:
        return self.pick(0, 1)  # a PLEG relist

    @staticmethod
    def first_tick(phase: float, period: int, at_or_after: float) -> float:
        ticks = max(0, -(-(at_or_after - phase) // period))  # ceil, never before the phase
        return phase + ticks * period

    def kill_decision(self, started: float) -> float:
        visible = started + self.lag()
        gate = visible
        if self.startup is not None:
            s = self.startup
            first = self.first_tick(
                self.startup_phase, s.period, max(started + s.initial_delay, visible)
            )
            serving = started + self.rng.uniform(
                0, 2 * (s.initial_delay + s.failure_threshold * s.period)
            )
            success = self.first_tick(self.startup_phase, s.period, max(first, serving))
            last_allowed = first + (s.failure_threshold - 1) * s.period
            if success > last_allowed:  # the startup probe gave up first
                return last_allowed + self.pick(0, s.timeout)
            gate = success + self.pick(0, s.timeout) + self.lag()
        live = self.liveness
        first = self.first_tick(
            self.live_phase, live.period, max(started + live.initial_delay, gate)
        )
        return first + (live.failure_threshold - 1) * live.period + self.pick(0, live.timeout)

    def run(self, restarts: int) -> None:
        backoff: float | None = None  # flowcontrol.Backoff entry for the container
        previous_exit: float | None = None
        started = 0.0
        while len(self.restarts_at) < restarts:
            exited = self.kill_decision(started) + self.pick(0, max(self.grace, 2))
            now = exited
            if previous_exit is not None and backoff is not None and now - previous_exit < backoff:
                if self.crash_loop_at is None:
                    self.crash_loop_at = exited + self.lag()
                while now - exited < backoff:  # kubelet's error retry until the window passes
                    now += self.pick(10, 15)
            if previous_exit is not None:
                backoff = 10.0 if backoff is None else min(2 * backoff, 300.0)
            previous_exit, started = exited, now + self.lag()
            self.restarts_at.append(started + self.lag())


def random_probe(rng: random.Random, *, max_delay: int) -> ProbeSettings:
    return ProbeSettings(
        initial_delay=rng.randint(0, max_delay),
        period=rng.randint(1, 10),
        timeout=rng.randint(1, 3),
        failure_threshold=rng.randint(1, 5),
    )


def test_bounds_hold_for_a_simulated_kubelet() -> None:
    rng = random.Random(20260131)
    for trial in range(400):
        liveness = random_probe(rng, max_delay=15)
        startup = random_probe(rng, max_delay=5) if trial % 2 else None
        grace = rng.choice([0, 2, 5, 30])
        kubelet = Kubelet(liveness, startup, grace, rng)
        kubelet.run(restarts=8)
        context = f"trial {trial}: {liveness} {startup} grace={grace}"
        for n, seen in enumerate(kubelet.restarts_at, start=1):
            assert seen <= time_to_restarts(n, liveness, grace, startup), context
        assert kubelet.crash_loop_at is not None, context
        assert kubelet.crash_loop_at <= time_to_crash_loop(liveness, grace, startup), context
