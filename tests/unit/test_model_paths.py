"""The accuracy rule (a run follows the nominal path or a reported branch, judged whole)
and the readiness runs kubelet makes right after a start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from probelab.model.app import app_for
from probelab.model.matching import Path as ModelPath
from probelab.model.matching import branch_paths, match, moments
from probelab.model.node import Node
from probelab.model.odds import sample_pod
from probelab.model.pods import PodUnderTest
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


def test_a_restarted_container_is_unready_until_its_startup_probe_passes() -> None:
    """new3/startup-then-liveness-delay: the API showed it unready a second after each
    restart, not only at CrashLoopBackOff."""
    container = {
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
    pod = PodUnderTest("p", {"containers": [container]}, "Pod/p")
    node = Node()
    t = predict_pod(pod, duration=30, apps=app_for(), node=node).containers[0]
    first = t.restarts_at[0]
    unready = [e.at for e in t.events if e.kind == "not-ready"]
    assert unready[0] == pytest.approx(first + node.notice + node.publish, abs=0.01)
    assert moments(t, True)["not ready"] < t.restarts_at[1]
