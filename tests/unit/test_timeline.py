"""The timeline: conversion from Kubernetes objects, queries, waiting and rendering; lab
waits whose pod or namespace goes fail at once (WaitAborted), never at their deadline, and a
"this never happens" check cannot pass while the API server is away."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client import (
    CoreV1Event,
    CoreV1EventSeries,
    V1Container,
    V1ContainerState,
    V1ContainerStateRunning,
    V1ContainerStateTerminated,
    V1ContainerStateWaiting,
    V1ContainerStatus,
    V1ObjectMeta,
    V1ObjectReference,
    V1Pod,
    V1PodCondition,
    V1PodSpec,
    V1PodStatus,
)

from probelab.errors import WaitAborted, WaitTimeout
from probelab.lab import START_SECOND, Lab, Scenario
from probelab.registries.base import Credentials, FixedRegistry
from probelab.timeline import EventObservation, PodObservation, Timeline

T0 = datetime(2026, 1, 31, 6, 0, 0, tzinfo=UTC)
IMAGE = "registry.example/fastapi-health:test"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def running(started: float) -> V1ContainerState:
    return V1ContainerState(running=V1ContainerStateRunning(started_at=at(started)))


def waiting(reason: str, message: str | None = None) -> V1ContainerState:
    return V1ContainerState(waiting=V1ContainerStateWaiting(reason=reason, message=message))


def killed(finished: float) -> V1ContainerState:
    return V1ContainerState(
        terminated=V1ContainerStateTerminated(
            exit_code=0, reason="Completed", finished_at=at(finished)
        )
    )


def pod(
    state: V1ContainerState | None = None,
    *,
    name: str = "fastapi-bad",
    phase: str = "Running",
    ready: bool = False,
    restarts: int = 0,
    last: V1ContainerState | None = None,
    deleting: bool = False,
) -> V1Pod:
    """A one-container pod like the lab's; no state means kubelet reported nothing yet."""
    statuses = None
    if state is not None:
        statuses = [
            V1ContainerStatus(
                name="app",
                image=IMAGE,
                image_id="",
                ready=ready,
                restart_count=restarts,
                state=state,
                last_state=last,
            )
        ]
    return V1Pod(
        metadata=V1ObjectMeta(name=name, deletion_timestamp=at(0) if deleting else None),
        spec=V1PodSpec(containers=[V1Container(name="app", image=IMAGE)]),
        status=V1PodStatus(
            phase=phase,
            conditions=[V1PodCondition(type="Ready", status="True" if ready else "False")],
            container_statuses=statuses,
        ),
    )


def event(
    reason: str,
    message: str,
    *,
    seconds: float,
    count: int = 1,
    uid: str | None = None,
    object_name: str = "fastapi-bad",
    series: bool = False,
) -> CoreV1Event:
    return CoreV1Event(
        metadata=V1ObjectMeta(
            name=f"{object_name}.{reason}", uid=uid or reason, creation_timestamp=T0
        ),
        involved_object=V1ObjectReference(kind="Pod", name=object_name),
        type="Warning" if reason in ("Unhealthy", "BackOff") else "Normal",
        reason=reason,
        message=message,
        count=None if series else count,
        last_timestamp=None if series else at(seconds),
        series=CoreV1EventSeries(count=count, last_observed_time=at(seconds)) if series else None,
    )


def test_a_pod_becomes_an_observation_with_kubectl_columns() -> None:
    timeline = Timeline()
    obs = timeline.add_pod(
        pod(running(20), ready=True, restarts=2, last=killed(19)),
        at=at(21),
    )
    assert (obs.pod, obs.phase, obs.ready, obs.deleted) == ("fastapi-bad", "Running", True, False)
    (app,) = obs.containers
    assert (app.name, app.state, app.started_at, app.restart_count) == ("app", "running", at(20), 2)
    assert (app.last_terminated_reason, app.last_exit_code, app.last_finished_at) == (
        "Completed",
        0,
        at(19),
    )
    assert (obs.ready_text, obs.status, obs.restarts) == ("1/1", "Running", 2)


@pytest.mark.parametrize(
    ("v1pod", "status", "ready_text"),
    [
        (pod(phase="Pending"), "Pending", "0/1"),
        (pod(waiting("ContainerCreating"), phase="Pending"), "ContainerCreating", "0/1"),
        (pod(waiting("CrashLoopBackOff", "back-off 20s"), restarts=3), "CrashLoopBackOff", "0/1"),
        (pod(killed(30)), "Completed", "0/1"),
        (pod(running(1), ready=True, deleting=True), "Terminating", "1/1"),
    ],
)
def test_status_matches_what_kubectl_prints(v1pod: V1Pod, status: str, ready_text: str) -> None:
    obs = Timeline().add_pod(v1pod, at=at(0))
    assert (obs.status, obs.ready_text) == (status, ready_text)


def test_a_container_without_status_is_unknown_but_still_counted() -> None:
    (app,) = Timeline().add_pod(pod(phase="Pending"), at=at(0)).containers
    assert (app.name, app.state, app.ready, app.restart_count) == ("app", "unknown", False, 0)


def test_waiting_reason_and_message_are_kept() -> None:
    obs = Timeline().add_pod(pod(waiting("ErrImagePull", "pull access denied")), at=at(0))
    assert (obs.containers[0].reason, obs.containers[0].message) == (
        "ErrImagePull",
        "pull access denied",
    )


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Timeline().add_pod(pod(), at=datetime(2026, 1, 1))


def test_queries_filter_by_pod_and_track_restarts_and_first_start() -> None:
    timeline = Timeline()
    timeline.add_pod(pod(waiting("ContainerCreating"), phase="Pending"), at=at(0))
    timeline.add_pod(pod(running(20)), at=at(20))
    timeline.add_pod(pod(running(32), restarts=2, last=killed(31)), at=at(32))
    timeline.add_pod(pod(running(41), restarts=1), at=at(41))  # a stale, out-of-order update
    timeline.add_pod(pod(running(5), name="fastapi-good", ready=True), at=at(5))

    assert [o.at for o in timeline.pods("fastapi-bad")] == [at(0), at(20), at(32), at(41)]
    assert len(timeline.pods()) == 5
    latest = timeline.latest("fastapi-bad")
    assert latest is not None and latest.at == at(41)
    assert timeline.latest("nobody") is None
    assert timeline.max_restarts("fastapi-bad") == 2
    assert timeline.max_restarts("fastapi-bad", container="app") == 2
    assert timeline.max_restarts("fastapi-bad", container="sidecar") == 0
    assert timeline.max_restarts("fastapi-good") == 0
    assert timeline.first_start("fastapi-bad") == at(20)
    assert timeline.first_start("nobody") is None
    first_running = timeline.first("fastapi-bad", lambda o: o.status == "Running")
    assert first_running is not None and first_running.at == at(20)
    assert timeline.first("fastapi-bad", lambda o: o.ready) is None


def test_event_time_prefers_series_then_last_timestamp() -> None:
    timeline = Timeline()
    legacy = timeline.add_event(event("Killing", "will be restarted", seconds=31))
    seriesed = timeline.add_event(
        event("Unhealthy", "probe failed", seconds=40, count=4, series=True)
    )
    assert (legacy.at, legacy.count) == (at(31), 1)
    assert (seriesed.at, seriesed.count) == (at(40), 4)


def test_event_time_falls_back_to_creation_timestamp() -> None:
    bare = CoreV1Event(
        metadata=V1ObjectMeta(name="e", creation_timestamp=at(7)),
        involved_object=V1ObjectReference(kind="Pod", name="p"),
    )
    observed = Timeline().add_event(bare)
    assert (observed.at, observed.count, observed.reason, observed.message) == (at(7), 1, "", "")


def test_events_filter_and_duplicates_from_a_restarted_watch_are_dropped() -> None:
    timeline = Timeline()
    timeline.add_event(event("Unhealthy", "Liveness probe failed: connection refused", seconds=8))
    timeline.add_event(event("Unhealthy", "Liveness probe failed: connection refused", seconds=8))
    timeline.add_event(
        event("Unhealthy", "Liveness probe failed: connection refused", seconds=13, count=2)
    )
    timeline.add_event(event("Killing", "Container app failed liveness probe", seconds=13))
    timeline.add_event(
        event("Started", "Started container app", seconds=2, object_name="fastapi-good")
    )

    assert len(timeline.events()) == 4
    assert [e.count for e in timeline.events(reason="Unhealthy")] == [1, 2]
    assert len(timeline.events(pod="fastapi-good")) == 1
    assert len(timeline.events(contains="liveness probe")) == 1  # case-sensitive substring
    assert len(timeline.events(pod="fastapi-bad", contains="Liveness")) == 2


def test_wait_until_wakes_on_appends_from_another_thread() -> None:
    timeline = Timeline()
    checked_once = threading.Event()

    def restarted_twice(t: Timeline) -> PodObservation | None:
        checked_once.set()
        return t.first("fastapi-bad", lambda o: o.restarts >= 2)

    def kubelet() -> None:
        checked_once.wait()  # append only after the waiter has looked at least once
        for restarts in range(4):
            timeline.add_pod(pod(running(10 * restarts), restarts=restarts), at=at(10 * restarts))

    producer = threading.Thread(target=kubelet)
    producer.start()
    found = timeline.wait_until(restarted_twice, timeout=10, what="two restarts")
    producer.join()
    assert found.restarts == 2
    assert found.at == at(20)


def test_wait_until_also_wakes_on_events() -> None:
    timeline = Timeline()
    checked_once = threading.Event()

    def killed_event(t: Timeline) -> list[EventObservation]:
        checked_once.set()
        return t.events(reason="Killing")

    def kubelet() -> None:
        checked_once.wait()
        timeline.add_event(event("Unhealthy", "Liveness probe failed", seconds=8))
        timeline.add_event(event("Killing", "will be restarted", seconds=13))

    producer = threading.Thread(target=kubelet)
    producer.start()
    (found,) = timeline.wait_until(killed_event, timeout=10, what="a Killing event")
    producer.join()
    assert found.at == at(13)


def test_wait_until_returns_at_once_when_already_true() -> None:
    timeline = Timeline()
    timeline.add_pod(pod(running(0), ready=True), at=at(0))
    assert timeline.wait_until(lambda t: t.latest("fastapi-bad"), timeout=0, what="pod") is not None


def test_wait_until_times_out_with_what_and_the_rendered_timeline() -> None:
    timeline = Timeline()
    timeline.add_pod(pod(waiting("CrashLoopBackOff"), restarts=3), at=at(0))
    with pytest.raises(WaitTimeout) as caught:
        timeline.wait_until(
            lambda t: t.first("fastapi-bad", lambda o: o.ready), timeout=0.01, what="pod Ready"
        )
    message = str(caught.value)
    assert message.startswith("pod Ready: not seen within 0.01s")
    assert "CrashLoopBackOff" in message and "NAME" in message
    assert isinstance(caught.value, AssertionError)  # pytest shows it as a failed assertion


def test_render_matches_kubectl_get_pod_watch_and_events() -> None:
    timeline = Timeline()
    timeline.add_pod(pod(waiting("ContainerCreating"), phase="Pending"), at=at(0))
    timeline.add_pod(pod(waiting("ContainerCreating"), phase="Pending"), at=at(1))  # no change
    timeline.add_pod(pod(running(20), ready=True), at=at(20))
    timeline.add_pod(pod(running(32), ready=True, restarts=1, last=killed(31)), at=at(32))
    timeline.add_pod(pod(waiting("CrashLoopBackOff"), restarts=3, last=killed(61)), at=at(62))
    timeline.add_pod(pod(running(193), ready=True, restarts=6, last=killed(111)), at=at(193))
    timeline.add_event(
        event("Killing", "Container app failed liveness probe,\nwill be restarted", seconds=31)
    )
    timeline.add_event(event("Unhealthy", "Liveness probe failed", seconds=13, count=2))

    assert timeline.render(now=at(200)) == "\n".join(
        [
            "NAME          READY   STATUS              RESTARTS      AGE",
            "fastapi-bad   0/1     ContainerCreating   0             0s",
            "fastapi-bad   1/1     Running             0             20s",
            "fastapi-bad   1/1     Running             1 (1s ago)    32s",
            "fastapi-bad   0/1     CrashLoopBackOff    3 (1s ago)    62s",
            "fastapi-bad   1/1     Running             6 (82s ago)   3m13s",
            "",
            "AGE     TYPE      REASON      OBJECT            MESSAGE",
            "3m7s    Warning   Unhealthy   pod/fastapi-bad   Liveness probe failed",
            "2m49s   Normal    Killing     pod/fastapi-bad   "
            "Container app failed liveness probe, will be restarted",
        ]
    )


def test_render_of_an_empty_timeline_says_so() -> None:
    assert Timeline().render(now=T0) == "(no pods seen)\n\n(no events seen)"


def test_endpoint_slices_are_recorded_and_shown() -> None:
    from kubernetes.client import V1Endpoint, V1EndpointConditions, V1EndpointSlice, V1ObjectMeta

    timeline = Timeline()
    slice_ = V1EndpointSlice(
        address_type="IPv4",
        metadata=V1ObjectMeta(name="svc-abc", labels={"kubernetes.io/service-name": "svc"}),
        endpoints=[
            V1Endpoint(addresses=["10.244.0.7"], conditions=V1EndpointConditions(ready=True)),
            V1Endpoint(addresses=["10.244.0.8"], conditions=V1EndpointConditions(ready=False)),
        ],
    )
    timeline.add_slice(slice_)
    (seen,) = timeline.slices("svc")
    assert seen.lists("10.244.0.7", ready=True) and seen.lists("10.244.0.8", ready=False)
    assert not seen.lists("10.244.0.8", ready=True) and timeline.slices("other") == []
    assert "10.244.0.8 (not ready)" in timeline.render()


# lab waits that can no longer come true


def _lab() -> Lab:
    """A Lab whose API client points nowhere: these tests feed its timeline by hand."""
    configuration = client.Configuration()
    configuration.host = "https://127.0.0.1:9"  # discard port: every call is refused
    return Lab(
        client.ApiClient(configuration),
        Scenario("unit", ()),
        namespace="probelab-unit-000000",
        run_id="unit",
        image="registry.example/fastapi-health:test",
        registry=FixedRegistry("registry.example", Credentials("u", "not-a-real-password")),
        manifests_dir=Path("."),
    )


def _as(obj: V1Pod, uid: str, *, deleting: bool = False) -> V1Pod:
    assert obj.metadata is not None
    obj.metadata = V1ObjectMeta(
        name=obj.metadata.name, uid=uid, deletion_timestamp=datetime.now(UTC) if deleting else None
    )
    return obj


def _aborts(lab: Lab, pod_name: str | None = "fastapi-bad") -> str:
    began = time.monotonic()
    with pytest.raises(WaitAborted) as caught:
        lab.wait(lambda t: None, timeout=30, what="three restarts", pod=pod_name)
    assert time.monotonic() - began < 5, "aborted only near its deadline"
    return str(caught.value).splitlines()[0]


def test_a_pod_already_terminating_fails_the_wait_at_once() -> None:
    lab = _lab()
    lab.timeline.add_pod(_as(pod(running(0)), "a", deleting=True))
    assert _aborts(lab) == "three restarts: pod fastapi-bad is being deleted"


def test_a_pod_replaced_under_the_wait_fails_it() -> None:
    lab = _lab()
    lab.timeline.add_pod(_as(pod(running(0)), "a"))
    gone = lab._gone("fastapi-bad")
    assert gone(lab.timeline) is None
    lab.timeline.add_pod(_as(pod(running(1)), "b"))  # a relist after an outage: new uid
    assert gone(lab.timeline) == "pod fastapi-bad was replaced by another pod of that name"


def test_a_pod_deleted_before_the_wait_may_come_back() -> None:
    """Deleted, then applied again: a wait that starts after the deletion is for the new one."""
    lab = _lab()
    lab.timeline.add_pod(_as(pod(running(0)), "a"), deleted=True)
    gone = lab._gone("fastapi-bad")
    lab.timeline.add_pod(_as(pod(running(5)), "b"))
    assert gone(lab.timeline) is None
    lab.timeline.add_pod(_as(pod(running(5)), "b"), deleted=True)
    assert gone(lab.timeline) == "pod fastapi-bad is being deleted"


def test_other_pods_going_do_not_matter() -> None:
    lab = _lab()
    lab.timeline.add_pod(_as(pod(running(0)), "a"))
    gone = lab._gone("fastapi-bad")
    lab.timeline.add_pod(_as(pod(running(0), name="other"), "c", deleting=True))
    assert gone(lab.timeline) is None


def test_a_namespace_being_deleted_fails_every_wait_in_it() -> None:
    lab = _lab()
    lab.timeline.namespace_deleting()
    assert _aborts(lab, pod_name=None) == (
        "three restarts: its namespace probelab-unit-000000 is being deleted"
    )


def test_a_plain_timeout_is_still_a_timeout() -> None:
    with pytest.raises(WaitTimeout) as caught:
        _lab().wait(lambda t: None, timeout=0.1, what="three restarts", pod="fastapi-bad")
    assert not isinstance(caught.value, WaitAborted)


def test_a_never_check_cannot_pass_while_the_api_server_is_away() -> None:
    lab = _lab()
    lab.timeline.add_pod(_as(pod(running(0)), "a"))
    started = lab.container_started("fastapi-bad")
    lab.timeline.api_unreachable(datetime.now(UTC) - timedelta(seconds=3))
    budget = (datetime.now(UTC) - started).total_seconds() + 0.2
    with pytest.raises(WaitAborted, match="no a restart seen, but the API server is unreachable"):
        lab.assert_never("fastapi-bad", lambda t: None, budget=budget, what="a restart")


def test_a_never_check_passes_after_an_outage_that_ended() -> None:
    """The relist after an outage brings the restart counts, so a closed outage hides none."""
    lab = _lab()
    lab.timeline.add_pod(_as(pod(running(0)), "a"))
    started = lab.container_started("fastapi-bad")
    lab.timeline.api_unreachable(datetime.now(UTC) - timedelta(seconds=3))
    lab.timeline.api_unreachable(None)
    budget = (datetime.now(UTC) - started).total_seconds() + 0.2
    lab.assert_never("fastapi-bad", lambda t: None, budget=budget, what="a restart")


def test_wait_until_takes_gone_from_its_caller() -> None:
    with pytest.raises(WaitAborted, match=r"^x: gone\n"):
        Timeline().wait_until(lambda t: None, timeout=30, what="x", gone=lambda t: "gone")


def test_a_never_check_of_a_window_already_over_looks_once() -> None:
    """No waiting once the window is over: what the timeline holds then is the answer."""
    lab = _lab()
    lab.timeline.add_pod(_as(pod(running(0)), "a"))
    started = lab.container_started("fastapi-bad")
    budget = (datetime.now(UTC) - started).total_seconds() - START_SECOND - 5
    looked = time.monotonic()
    lab.assert_never("fastapi-bad", lambda t: None, budget=budget, what="a restart")
    assert time.monotonic() - looked < 0.5
    with pytest.raises(AssertionError, match="a restart happened: seen"):
        lab.assert_never("fastapi-bad", lambda t: "seen", budget=budget, what="a restart")
