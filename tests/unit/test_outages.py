"""A wait during which the API server was unreachable says so, and for how long."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import urllib3.exceptions
from kubernetes import watch

from probelab import recorder
from probelab.errors import WaitTimeout
from probelab.timeline import Timeline


def test_a_timed_out_wait_names_the_outage() -> None:
    timeline = Timeline()
    timeline.api_unreachable(datetime.now(UTC) - timedelta(seconds=40))
    with pytest.raises(WaitTimeout, match=r"unreachable for \d+s of it and still is"):
        timeline.wait_until(lambda t: None, timeout=0.2, what="the pod to start")


def test_a_wait_without_outage_says_nothing_of_it() -> None:
    with pytest.raises(WaitTimeout) as caught:
        Timeline().wait_until(lambda t: None, timeout=0.1, what="the pod to start")
    assert "unreachable" not in str(caught.value)


def test_outage_seconds_count_only_inside_the_wait() -> None:
    timeline = Timeline()
    start = datetime.now(UTC) - timedelta(seconds=100)
    timeline.api_unreachable(start)
    timeline.api_unreachable(start)  # the second watch thread noticing too: one outage
    timeline.api_unreachable(None)
    lost, ongoing = timeline.unreachable_seconds(start + timedelta(seconds=60), datetime.now(UTC))
    assert 39 <= lost <= 41 and not ongoing


def test_follow_reports_lost_and_regained_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused list is an outage from the last answer; the next good list ends it."""
    monkeypatch.setattr(recorder, "retry_transient", lambda func: func)
    monkeypatch.setattr(recorder, "RELIST_PAUSE_SECONDS", 0.0)
    stopping = recorder.Stopping()
    calls: list[datetime | None] = []
    attempts = iter([urllib3.exceptions.ProtocolError("connection refused"), None])

    def list_func(**_: Any) -> Any:
        failure = next(attempts)
        if failure is not None:
            raise failure
        stopping.set()  # one good list, then stop
        return SimpleNamespace(items=[], metadata=SimpleNamespace(resource_version="1"))

    recorder.follow(list_func, lambda kind, obj: None, stopping, unreachable=calls.append)
    assert len(calls) == 2
    assert isinstance(calls[0], datetime) and calls[1] is None


def test_an_object_gone_during_an_outage_is_handed_over_as_deleted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A relist no longer holding an object says it went while nobody watched."""
    monkeypatch.setattr(recorder, "retry_transient", lambda func: func)
    monkeypatch.setattr(recorder, "RELIST_PAUSE_SECONDS", 0.0)
    stopping = recorder.Stopping()
    pod = SimpleNamespace(metadata=SimpleNamespace(uid="u1", name="fastapi-bad"))
    listings = iter([[pod], []])
    seen: list[tuple[str, Any]] = []

    def list_func(**kwargs: Any) -> Any:
        if kwargs.get("watch"):
            raise urllib3.exceptions.ProtocolError("connection refused")  # the outage
        items = next(listings)
        if not items:
            stopping.set()
        return SimpleNamespace(items=items, metadata=SimpleNamespace(resource_version="1"))

    recorder.follow(list_func, lambda kind, obj: seen.append((kind, obj)), stopping)
    assert seen == [("ADDED", pod), ("DELETED", pod)]


@pytest.mark.parametrize(
    "refusal",
    [
        OSError(107, "Transport endpoint is not connected"),
        ValueError("Cannot shutdown socket as self._sock_shutdown is not set"),
        RuntimeError("Cannot shutdown as connection has already been released to the pool"),
    ],
)
def test_a_stop_after_the_server_ended_a_watch_still_stops(refusal: Exception) -> None:
    """The response of a watch the server has just ended refuses a shutdown (urllib3's
    three ways): nothing is left to stop there, and the stop goes on to the other watches."""

    class Ended:
        def shutdown(self) -> None:
            raise refusal

    stopping = recorder.Stopping()
    ended, open_watch = watch.Watch(), watch.Watch()
    ended._resp = Ended()  # where the client keeps the response of the request in flight
    with stopping.watching(ended), stopping.watching(open_watch):
        stopping.set()
    assert stopping.is_set() and ended._stop and open_watch._stop
