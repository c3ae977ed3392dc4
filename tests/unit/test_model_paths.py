"""The accuracy rule (a run follows the nominal path or a reported branch, judged whole)
and the readiness runs kubelet makes right after a start."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from probelab.model.app import app_for
from probelab.model.matching import Path as ModelPath
from probelab.model.matching import branch_paths, match, moments
from probelab.model.node import Node
from probelab.model.odds import sample_pod
from probelab.model.pods import PodUnderTest
from probelab.model.rules import Kubelet
from probelab.model.schema import ContainerTimeline, Event
from probelab.model.simulate import predict_pod
from probelab.predict import read_pods

ROOT = Path(__file__).resolve().parents[2]
LAB = "registry.local:5000/fastapi-health:0123abcd"


def story(restarts: list[float], clbo: float | None = None) -> ContainerTimeline:
    return ContainerTimeline("app", restarts_at=restarts, crash_loop_back_off_at=clbo)


NOMINAL = ModelPath("nominal", None, moments(story([10, 20, 30], 40.5), False))
EARLY = ModelPath("branch", 0.4, moments(story([10, 20, 44], 30.2), False))


def test_a_run_on_a_reported_branch_is_explained_with_its_odds() -> None:
    seen = moments(story([9.8, 20.3, 44.9], 29.8), False)
    assert match(seen, NOMINAL, [EARLY], 2.0).path is EARLY
    assert match(seen, NOMINAL, [], 2.0).path is None


def test_a_run_stitched_from_two_branches_follows_neither() -> None:
    """Each moment lies inside the sampled spread, yet no node takes that path."""
    seen = moments(story([10, 20, 30], 30.2), False)
    assert match(seen, NOMINAL, [EARLY], 2.0).path is None


def test_a_restart_count_no_path_has_is_unexplained() -> None:
    seen = moments(story([10, 20, 30, 54]), False)
    assert match(seen, NOMINAL, [EARLY], 2.0).path is None


def test_a_run_on_the_nominal_path_is_judged_against_it_first() -> None:
    seen = moments(story([10.5, 19.6, 31.1], 40.0), False)
    assert match(seen, NOMINAL, [EARLY], 2.0).path is NOMINAL


def test_ready_is_a_moment_only_when_a_probe_decides_it() -> None:
    t = story([])
    t.ready_at, t.events = 1.6, [Event(1.6, "ready", "x"), Event(9.0, "not-ready", "x")]
    assert moments(t, True) == {"Ready": 1.6, "not ready": 9.0}
    assert moments(t, False) == {"not ready": 9.0}


def test_branches_are_whole_sampled_paths_most_likely_first() -> None:
    (pod,) = read_pods(ROOT / "manifests" / "fastapi-liveness-bad.yaml")
    paths = [
        p.containers[0] for p in sample_pod(pod, duration=60, apps=app_for(), samples=300, seed=2)
    ]
    branches = branch_paths(paths, False)
    assert abs(sum(b.probability or 0 for b in branches) - 1) < 1e-9
    odds = [b.probability or 0 for b in branches]
    assert odds == sorted(odds, reverse=True)
    # the third kill's back-off window is a coin toss: both stories are reported
    thirds = {"CrashLoopBackOff" in b.at and b.at["CrashLoopBackOff"] < 35 for b in branches}
    assert thirds == {True, False}


def ready_at(boot: float, period: int = 5, **node: Any) -> float:
    container = {
        "name": "app",
        "image": LAB,
        "env": [{"name": "SLOW_START", "value": "1"}, {"name": "STARTUP_SLEEP", "value": "0"}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": period},
    }
    pod = PodUnderTest("p", {"containers": [container]}, "Pod/p")
    nodes = Node(app_boot=boot, **node)
    at = predict_pod(pod, duration=40, apps=app_for(), node=nodes).containers[0].ready_at
    assert at is not None
    return at


@pytest.mark.parametrize("period", [5, 7])
def test_an_app_booting_past_both_syncs_after_its_start_waits_a_period(period: int) -> None:
    """The sync of the relist that saw the start and the next one each run the readiness
    probe at once; an app that answers neither is next probed a period after the second
    (fastapi-good in the lab: Ready about 6.6 s after the start, not 1.7 s)."""
    node = Node()
    first = node.notice
    second = first + node.follow_up
    assert ready_at(first - 0.1) == pytest.approx(first + node.publish, abs=0.01)
    assert ready_at(second - 0.1) == pytest.approx(second + node.publish, abs=0.01)
    assert ready_at(second + 0.1, period) == pytest.approx(second + period + node.publish, abs=0.01)


STARTUP_THEN_SLOW_LIVENESS = {
    "name": "app",
    "image": LAB,
    "startupProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1},
    "livenessProbe": {
        "httpGet": {"path": "/healthz", "port": 8000},
        "initialDelaySeconds": 6,
        "periodSeconds": 3,
        "failureThreshold": 2,
    },
}


def restarted(version: str, container: dict[str, Any], duration: float = 30) -> ContainerTimeline:
    pod = PodUnderTest("p", {"containers": [container]}, "Pod/p")
    kubelet = Kubelet.parse(version)
    return predict_pod(pod, duration=duration, apps=app_for(), kubelet=kubelet).containers[0]


def test_before_1_35_a_restarted_container_is_unready_as_soon_as_it_is_seen() -> None:
    """new3/startup-then-liveness-delay: the API showed it unready a second after each
    restart, not only at CrashLoopBackOff."""
    node = Node()
    t = restarted("1.34", STARTUP_THEN_SLOW_LIVENESS)
    unready = [e.at for e in t.events if e.kind == "not-ready"]
    assert unready[0] == pytest.approx(t.restarts_at[0] + node.notice + node.publish, abs=0.01)
    assert moments(t, True)["not ready"] < t.restarts_at[1]


def test_from_1_35_a_restarted_container_keeps_started_until_the_startup_workers_look() -> None:
    """kubelet 1.35+ copies Started from the killed instance: Ready holds until the startup
    worker's first tick on the new one (a whole tick after it is seen), which probes
    nothing, so the startup probe passes a period after that."""
    node = Node()
    t = restarted("1.35", STARTUP_THEN_SLOW_LIVENESS)
    seen = t.restarts_at[0] + node.notice
    look = -node.sandbox + math.ceil(seen + node.sandbox)  # period 1, ticker from -sandbox
    unready = [e.at for e in t.events if e.kind == "not-ready"]
    assert unready[0] == pytest.approx(look + node.publish, abs=0.01)
    ready_again = [e.at for e in t.events if e.kind == "ready" and e.at > unready[0]]
    assert ready_again[0] >= look + 1


WRONG_PORT_SAME_PERIOD = {
    "name": "app",
    "image": LAB,
    "startupProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 3},
    "livenessProbe": {"tcpSocket": {"port": 8000}, "periodSeconds": 3, "failureThreshold": 1},
}


def test_the_liveness_tick_with_the_startup_workers_look_is_a_reported_race() -> None:
    """new7/startup-then-liveness-wrong-port-period-3: with Started inherited, the liveness
    tick in the instant of the startup worker's first look killed the restarted container
    in 7 of 10 runs, or waited two more periods; before 1.35 it always waited one."""
    assert restarted("1.34", WRONG_PORT_SAME_PERIOD, 20).restarts_at[:2] == pytest.approx(
        [6.0, 12.0], abs=0.3
    )
    nominal = restarted("1.35", WRONG_PORT_SAME_PERIOD, 20)
    assert nominal.restarts_at[:2] == pytest.approx([6.0, 9.0], abs=0.3)
    assert any("the startup worker's first look" in note for note in nominal.notes)
    pod = PodUnderTest("p", {"containers": [WRONG_PORT_SAME_PERIOD]}, "Pod/p")
    paths = sample_pod(
        pod, duration=20, apps=app_for(), samples=200, seed=7, kubelet=Kubelet.parse("1.35")
    )
    second = Counter(round(p.containers[0].restarts_at[1]) for p in paths)
    assert set(second) == {9, 15}
    assert 0.55 < second[9] / 200 < 0.85


def test_a_startup_look_during_a_long_kill_ends_the_inherited_started_for_good() -> None:
    """new8/ignores-sigterm-startup-liveness-wrong-port: the second instance inherits Started
    and is killed at once, but its kill lasts the 3 s grace, and the startup worker's look at
    it meanwhile writes "not started" into the status the third instance copies from; so
    the third inherits nothing: liveness waits for its startup probe."""
    container = {
        "name": "app",
        "image": LAB,
        "env": [{"name": "IGNORE_SIGTERM", "value": "1"}],
        "startupProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 3},
        "livenessProbe": {
            "tcpSocket": {"port": 8000},
            "periodSeconds": 2,
            "failureThreshold": 1,
            "terminationGracePeriodSeconds": 3,
        },
    }
    t = restarted("1.36", container, 20)
    assert len(t.restarts_at) >= 2
    kills = [e.at for e in t.events if e.kind == "killing"]
    assert kills[1] - t.restarts_at[0] < 2  # the second instance: killed at its first tick
    assert kills[2] - t.restarts_at[1] > 2  # the third waited for its startup probe
    # The second's look came while its kill held the pod: Ready until the third's status.
    unready = [e.at for e in t.events if e.kind == "not-ready"]
    assert t.restarts_at[1] < unready[0] < t.restarts_at[1] + 1
