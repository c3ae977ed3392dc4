"""Feed a Timeline from watches of the pods, events and EndpointSlices in one namespace,
and of the namespace itself (a namespace being deleted ends every wait in it at once).

Four background threads, one per resource, each list once and then watch from the list's
resourceVersion, as `kubectl get -w` does. A watch the server ends is resumed from the
last version seen; one that has expired (410 Gone) starts again from a new list, and the
timeline drops the duplicates a relist brings. The recorder starts before anything is
applied, so the timeline holds every change from the first one.
"""

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import urllib3.exceptions
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from probelab.kube import retry_transient
from probelab.timeline import Timeline

log = logging.getLogger(__name__)

# How long one watch request stays open before it is resumed from the last version seen.
WATCH_WINDOW_SECONDS = 5
# After a failed list or watch, pause this long (or until stopped) before listing again.
RELIST_PAUSE_SECONDS = 1.0


class Stopping(threading.Event):
    """The stop signal of watch loops (`follow`), which also ends the watch requests in
    flight: a watch waiting for its next change would otherwise see it only when its window
    closes, and every teardown waited out up to WATCH_WINDOW_SECONDS for that."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._watches: set[watch.Watch] = set()

    def set(self) -> None:
        super().set()
        with self._lock:
            for open_watch in self._watches:
                _end(open_watch)

    @contextlib.contextmanager
    def watching(self, open_watch: watch.Watch) -> Iterator[watch.Watch]:
        """`open_watch` is ended by `set` while the block runs."""
        with self._lock:
            self._watches.add(open_watch)
        try:
            yield open_watch
        finally:
            with self._lock:
                self._watches.discard(open_watch)


def _end(open_watch: watch.Watch) -> None:
    """Stop a watch now: flag it, and shut its response's socket, which wakes the read
    blocked on it (urllib3's `shutdown`). The client keeps the response of the request in
    flight on the Watch (`_resp`), its one handle on it."""
    open_watch.stop()
    response = getattr(open_watch, "_resp", None)
    if response is not None:
        # A response the server has just ended is closed (OSError), or its connection
        # released (ValueError) or back in the pool (RuntimeError): that watch is over,
        # which is all a stop asks.
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            response.shutdown()


class Recorder:
    """Records pods, events and EndpointSlices of `namespace` into `timeline` until stopped."""

    def __init__(self, api: client.ApiClient, namespace: str, timeline: Timeline) -> None:
        self.namespace = namespace
        self.timeline = timeline
        self._core = client.CoreV1Api(api)
        discovery = client.DiscoveryV1Api(api)
        self._stopping = Stopping()
        in_namespace = {"namespace": namespace}
        watches: list[tuple[str, Callable[..., Any], Callable[[str, Any], None], dict[str, str]]]
        watches = [
            ("pods", self._core.list_namespaced_pod, self._add_pod, in_namespace),
            ("events", self._core.list_namespaced_event, self._add_event, in_namespace),
            (
                "endpoints",
                discovery.list_namespaced_endpoint_slice,
                self._add_slice,
                in_namespace,
            ),
            (
                "namespace",
                self._core.list_namespace,
                self._add_namespace,
                {"field_selector": f"metadata.name={namespace}"},
            ),
        ]
        self._ready = threading.Barrier(len(watches) + 1)
        self._threads = [
            threading.Thread(
                target=self._follow,
                args=(list_func, add, list_kwargs),
                name=f"probelab-{what}-{namespace}",
                daemon=True,
            )
            for what, list_func, add, list_kwargs in watches
        ]

    def start(self) -> "Recorder":
        """Start the watches; returns once each has made its first list."""
        for thread in self._threads:
            thread.start()
        self._ready.wait(timeout=60)
        return self

    def stop(self) -> None:
        """End the watches (at once: `Stopping`)."""
        self._stopping.set()

    def join(self) -> None:
        """Wait for the watches to have ended (after `stop`)."""
        for thread in self._threads:
            thread.join(timeout=WATCH_WINDOW_SECONDS + 5)

    def _add_pod(self, kind: str, pod: client.V1Pod) -> None:
        self.timeline.add_pod(pod, deleted=kind == "DELETED")

    def _add_event(self, kind: str, event: client.CoreV1Event) -> None:
        if kind != "DELETED":
            self.timeline.add_event(event)

    def _add_slice(self, kind: str, slice_: client.V1EndpointSlice) -> None:
        if kind != "DELETED":
            self.timeline.add_slice(slice_)

    def _add_namespace(self, kind: str, namespace: client.V1Namespace) -> None:
        if kind == "DELETED" or (namespace.metadata and namespace.metadata.deletion_timestamp):
            self.timeline.namespace_deleting()

    def _follow(
        self,
        list_func: Callable[..., Any],
        add: Callable[[str, Any], None],
        list_kwargs: dict[str, str],
    ) -> None:
        follow(
            list_func,
            add,
            self._stopping,
            listed=lambda: self._ready.wait(timeout=60),
            unreachable=self.timeline.api_unreachable,
            where=f"in {self.namespace}",
            **list_kwargs,
        )


def follow(
    list_func: Callable[..., Any],
    add: Callable[[str, Any], None],
    stopping: Stopping,
    *,
    listed: Callable[[], object] = lambda: None,
    unreachable: Callable[[datetime | None], object] = lambda since: None,
    where: str = "",
    **list_kwargs: Any,
) -> None:
    """Hand every listed and then watched object to `add(kind, obj)` until `stopping`.

    `listed` is called once, after the first list. Watches resume from the last version
    seen; a failed list or watch (410 Gone too) starts again from a new list, and an object
    that list no longer holds is handed over as DELETED (it went while nobody watched).
    `unreachable(since)` is told when the API server could not be reached (since the last
    moment it answered), and `unreachable(None)` once a list succeeds again.
    """
    first = True
    answered = datetime.now(UTC)
    known: dict[str, Any] = {}  # by uid: what the last list and the watch since delivered
    while not stopping.is_set():
        try:
            listing = retry_transient(list_func)(**list_kwargs)
            answered = datetime.now(UTC)
            unreachable(None)
            listed_now = {_uid(item): item for item in listing.items}
            for item in listing.items:
                add("ADDED", item)
            for uid in known.keys() - listed_now.keys():
                add("DELETED", known[uid])
            known = listed_now
            version = listing.metadata.resource_version
            if first:
                first = False
                listed()
            while not stopping.is_set():
                with stopping.watching(watch.Watch()) as open_watch:
                    for change in open_watch.stream(
                        list_func,
                        resource_version=version,
                        timeout_seconds=WATCH_WINDOW_SECONDS,
                        **list_kwargs,
                    ):
                        obj = change["object"]
                        answered = datetime.now(UTC)
                        version = obj.metadata.resource_version
                        if change["type"] == "DELETED":
                            known.pop(_uid(obj), None)
                        else:
                            known[_uid(obj)] = obj
                        add(change["type"], obj)
                answered = datetime.now(UTC)  # the window ended as the server closed it
        except ApiException as error:
            if error.status != 410 and not stopping.is_set():
                log.warning("watch %s failed (%s); listing again", where, error)
                stopping.wait(RELIST_PAUSE_SECONDS)
        except Exception as error:  # keep recording through transient failures
            if stopping.is_set():
                return  # the stop itself ended the watch
            if isinstance(error, urllib3.exceptions.HTTPError | OSError):
                unreachable(answered)
            log.warning("watch %s broke (%s); listing again", where, error)
            stopping.wait(RELIST_PAUSE_SECONDS)


def _uid(obj: Any) -> str:
    return str(obj.metadata.uid or obj.metadata.name)
