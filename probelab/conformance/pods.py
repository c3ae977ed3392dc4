"""What the suite's pods did, seen by our own watch rather than taken from the suite's logs.

One watch over every namespace records, per pod of a namespace the run created: the pod
as first seen (its spec, for `probelab predict`), the highest restart count of its
containers, and images kubelet failed to pull, so a missing image is named at once.
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from probelab.recorder import WATCH_WINDOW_SECONDS, Stopping, follow

PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName")


@dataclass
class PodRecord:
    """One pod of the suite."""

    namespace: str
    name: str
    manifest: dict[str, Any]
    restarts: dict[str, int] = field(default_factory=dict)  # by container, init ones too

    @property
    def total_restarts(self) -> int:
        """What upstream's `getRestartCount` sums: every container's restart count."""
        return sum(self.restarts.values())


class PodLog:
    """Records the pods of namespaces `mine(namespace)` accepts, until stopped."""

    def __init__(self, api: client.ApiClient, mine: Callable[[str], bool]) -> None:
        self._api = api
        self._mine = mine
        self._lock = threading.Lock()
        self._stopping = Stopping()
        self._listed = threading.Event()
        self.pods: dict[str, PodRecord] = {}  # by namespace/name
        self.pull_failures: dict[str, str] = {}  # image -> "namespace/pod: message"
        self._thread = threading.Thread(target=self._run, name="probelab-e2e-pods", daemon=True)

    def start(self) -> "PodLog":
        self._thread.start()
        self._listed.wait(timeout=60)
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=WATCH_WINDOW_SECONDS + 5)

    def in_namespace(self, namespace: str) -> list[PodRecord]:
        with self._lock:
            return [pod for pod in self.pods.values() if pod.namespace == namespace]

    def _run(self) -> None:
        follow(
            client.CoreV1Api(self._api).list_pod_for_all_namespaces,
            self._add,
            self._stopping,
            listed=self._listed.set,
            where="of the suite's pods",
        )

    def _add(self, kind: str, pod: client.V1Pod) -> None:
        meta = pod.metadata
        if meta is None or not meta.namespace or not meta.name or not self._mine(meta.namespace):
            return
        key = f"{meta.namespace}/{meta.name}"
        with self._lock:
            record = self.pods.get(key)
            if record is None:
                record = self.pods[key] = PodRecord(meta.namespace, meta.name, _manifest(pod))
            status = pod.status
            statuses = [
                *((status.init_container_statuses or []) if status else []),
                *((status.container_statuses or []) if status else []),
            ]
            for container in statuses:
                seen = record.restarts.get(container.name, 0)
                record.restarts[container.name] = max(seen, container.restart_count or 0)
                waiting = container.state.waiting if container.state else None
                if waiting is not None and waiting.reason in PULL_FAILURES:
                    self.pull_failures.setdefault(
                        container.image, f"{key}: {waiting.reason}: {waiting.message or ''}"
                    )


def _manifest(pod: client.V1Pod) -> dict[str, Any]:
    """The pod as a manifest `probelab predict` reads: kind, name and spec, no status."""
    spec: dict[str, Any] = client.ApiClient().sanitize_for_serialization(pod.spec)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod.metadata.name if pod.metadata else "pod"},
        "spec": spec,
    }
