"""A run's claim on its namespaces, so that no other run deletes them and killed runs' go.

Each run (a pytest session of the lab, an `observe`) holds a coordination.k8s.io Lease
named after its run id in the `default` namespace, renewed in the background while it
runs; every namespace it creates carries the run id in `kube.RUN_LABEL`. A new run sweeps
only namespaces probelab labelled, created before it started, whose run is gone: the Lease
is missing or expired, or its holder was a process on this machine that no longer exists
(so a killed run is seen at once, not a lease period later). Two runs at once on one
cluster therefore never touch each other's namespaces, on every kind of cluster.
"""

import logging
import os
import socket
import threading
import uuid
from datetime import UTC, datetime, timedelta
from types import TracebackType

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from probelab import kube
from probelab.i18n import _
from probelab.pids import process_start_time
from probelab.progress import say

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "default"
LEASE_SECONDS = 60  # a run whose renewals stall this long (API down, CPU starved) is gone
RENEW_EVERY = 10.0
ORPHAN_AGE = timedelta(hours=1)  # longer than any lab session or integration test runs


def lease_name(run_id: str) -> str:
    return f"probelab-run-{run_id}"


def _identity() -> str:
    """`host/pid/start-time`: names this process uniquely, even after its PID is reused."""
    pid = os.getpid()
    return f"{socket.gethostname()}/{pid}/{process_start_time(pid)}"


def holder_alive(identity: str) -> bool:
    """False only when the holder was a process on this machine that no longer exists."""
    host, _, rest = identity.partition("/")
    pid_text, _, start_text = rest.partition("/")
    if host != socket.gethostname() or not pid_text.isdigit():
        return True  # another machine's run: only its lease's expiry can tell
    started = process_start_time(int(pid_text))
    return started is not None and str(started) == start_text


def lease_expired(lease: client.V1Lease, now: datetime) -> bool:
    spec = lease.spec
    if spec is None or spec.renew_time is None:
        return True
    return bool(spec.renew_time + timedelta(seconds=spec.lease_duration_seconds or 0) < now)


class RunLease:
    """This run's Lease: taken on entry, renewed until exit, then released."""

    def __init__(self, api: client.ApiClient, run_id: str | None = None) -> None:
        self.api = api
        self.run_id = run_id or uuid.uuid4().hex[:8]
        self.started = datetime.now(UTC)
        self._coordination = client.CoordinationV1Api(api)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.held = False

    def __enter__(self) -> "RunLease":
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def acquire(self) -> None:
        now = datetime.now(UTC)
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(
                name=lease_name(self.run_id), labels={kube.RUN_LABEL: self.run_id}
            ),
            spec=client.V1LeaseSpec(
                holder_identity=_identity(),
                lease_duration_seconds=LEASE_SECONDS,
                acquire_time=now,
                renew_time=now,
            ),
        )
        try:
            kube.retry_transient(self._coordination.create_namespaced_lease)(LEASE_NAMESPACE, body)
        except ApiException as error:
            if error.status != 403:
                raise
            say(
                _(
                    "warning: not allowed to create Leases in namespace {namespace}; "
                    "namespaces of killed runs will not be swept (grant create, patch and "
                    "delete on leases there)"
                ).format(namespace=LEASE_NAMESPACE)
            )
            return
        self.held = True
        self._thread = threading.Thread(target=self._renew, name="run-lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_EVERY):
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            try:
                self._coordination.patch_namespaced_lease(
                    lease_name(self.run_id),
                    LEASE_NAMESPACE,
                    {"spec": {"renewTime": now}},
                    _request_timeout=5,
                )
            except Exception as error:  # the API may be away for a moment; try again later
                log.debug("renewing the run's lease failed: %s", error)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if not self.held:
            return
        try:
            kube.retry_transient(self._coordination.delete_namespaced_lease)(
                lease_name(self.run_id), LEASE_NAMESPACE
            )
        except ApiException as error:
            if error.status != 404:
                raise
        self.held = False

    def sweep(self) -> list[str]:
        """Delete namespaces (and leases) left by runs that are gone; returns the names."""
        if not self.held:
            return []
        return sweep(self.api, before=self.started)


def sweep(api: client.ApiClient, *, before: datetime) -> list[str]:
    """Delete the namespaces of gone runs created before `before`, then those runs'
    Leases (so a failed deletion is retried by the next sweep); returns the names."""
    stale, gone_leases = stale_namespaces(api, before=before)
    for name in stale:
        kube.delete_namespace(api, name)
    coordination = client.CoordinationV1Api(api)
    for lease in gone_leases:
        _delete_lease(coordination, lease)
    if stale:
        say(
            _("deleted {count} namespaces left by earlier runs: {names}").format(
                count=len(stale), names=", ".join(stale)
            )
        )
    return stale


def stale_namespaces(api: client.ApiClient, *, before: datetime) -> tuple[list[str], list[str]]:
    """probelab's namespaces created before `before` whose run is gone, and the Leases of
    the gone runs.

    A namespace with no Lease at all was made without one (by an older probelab, or by a
    test driving `Lab` directly, which may still be running): it counts as gone only once
    it is older than ORPHAN_AGE.
    """
    core = client.CoreV1Api(api)
    coordination = client.CoordinationV1Api(api)
    now = datetime.now(UTC)
    leases: dict[str, client.V1Lease] = {
        str(lease.metadata.name if lease.metadata else ""): lease
        for lease in kube.retry_transient(coordination.list_namespaced_lease)(
            LEASE_NAMESPACE, label_selector=kube.RUN_LABEL
        ).items
    }
    gone = [
        name
        for name, lease in leases.items()
        if lease_expired(lease, now)
        or not holder_alive(str(lease.spec.holder_identity or "") if lease.spec else "")
    ]
    stale = []
    for namespace in kube.retry_transient(core.list_namespace)(label_selector=kube.RUN_LABEL).items:
        meta = namespace.metadata
        if meta is None or not meta.name or meta.deletion_timestamp is not None:
            continue
        created = meta.creation_timestamp
        if created is None or created >= before:
            continue
        run = lease_name((meta.labels or {}).get(kube.RUN_LABEL, ""))
        if run in gone or (run not in leases and now - created > ORPHAN_AGE):
            stale.append(meta.name)
    return stale, gone


def _delete_lease(coordination: client.CoordinationV1Api, name: str) -> None:
    try:
        kube.retry_transient(coordination.delete_namespaced_lease)(name, LEASE_NAMESPACE)
    except ApiException as error:
        if error.status != 404:
            raise


def live_namespaces(api: client.ApiClient, prefix: str) -> list[str]:
    """probelab's namespaces named `<prefix>-...` that are not being deleted."""
    items = kube.retry_transient(client.CoreV1Api(api).list_namespace)(
        label_selector=kube.RUN_LABEL
    ).items
    return [
        str(ns.metadata.name)
        for ns in items
        if ns.metadata
        and str(ns.metadata.name).startswith(prefix + "-")
        and ns.metadata.deletion_timestamp is None
    ]
