"""One scenario of the lab: its namespace, what it applies, and what it recorded.

A `Lab` is what a test in `labs/` receives. It owns a fresh namespace, records a timeline
of that namespace from before the first object is applied, and offers the steps the seed
has students type (`kubectl apply`, `create secret docker-registry`, `patch
serviceaccount`, `logs --previous`). Deleting the namespace is the teardown.
"""

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import urllib3.exceptions
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from probelab import kube
from probelab.errors import WaitAborted, WaitTimeout
from probelab.i18n import _
from probelab.manifests import find_manifest, load_manifest
from probelab.model.rules import Kubelet
from probelab.recorder import Recorder
from probelab.registries.base import PULL_SECRET, Registry
from probelab.timeline import Timeline, event_time

T = TypeVar("T")

# What happens before a probe can matter is governed by no probe setting, so it is bounded
# once here: a pod reaching its first container start (scheduling, image pull, sandbox).
# Everything after that first start takes its deadline from the kubelet model.
POD_START_ALLOWANCE = 60.0
START_SECOND = 1.0
"""The API keeps a container's StartedAt to the second: the true start may be up to this
much later than the time every deadline counts from."""
SCENARIO_LABEL = "probelab.dev/scenario"


@dataclass(frozen=True)
class Scenario:
    """What a scenario starts with: manifests applied at once, with or without the secret."""

    name: str
    manifests: tuple[str, ...]
    pull_secret: bool = True
    always_pull: bool = False
    """The lab image's containers get imagePullPolicy Always: a node that already holds the
    image (other scenarios pulled it) still asks the registry, as a student's fresh node
    must. Kubelets before 1.35 (gate KubeletEnsureSecretPulledImages off) would otherwise
    start a cached image without any credentials."""
    acts: bool = False
    """Its tests act on the cluster (a secret, a pod made anew, a client pod) rather than
    only wait: the plugin runs them first, so that their own seconds pass while the other
    scenarios' pods are still on their way, not after the longest wait."""


def namespace_name(prefix: str, scenario: str) -> str:
    """A short unique namespace name (DNS label: at most 63 characters)."""
    suffix = uuid.uuid4().hex[:6]
    return f"{prefix}-{scenario}"[: 63 - len(suffix) - 1].rstrip("-") + f"-{suffix}"


class Lab:
    """A scenario's namespace on a real cluster."""

    def __init__(
        self,
        api: client.ApiClient,
        scenario: Scenario,
        *,
        namespace: str,
        run_id: str,
        image: str,
        registry: Registry,
        manifests_dir: Path,
        student_manifests: Path | None = None,
        kubelet: Kubelet | None = None,
    ) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.scenario = scenario
        self.namespace = namespace
        self.image = image
        self.registry = registry
        self.manifests_dir = manifests_dir
        self.student_manifests = student_manifests  # `--manifests DIR`: the student's copies
        self.timeline = Timeline()
        self.kubelet = kubelet or Kubelet()
        self._run_id = run_id
        self._recorder: Recorder | None = None

    def start(self) -> "Lab":
        """Create the namespace, start recording, then set the scenario up."""
        kube.create_namespace(
            self.api,
            self.namespace,
            {kube.RUN_LABEL: self._run_id, SCENARIO_LABEL: self.scenario.name},
        )
        self._recorder = Recorder(self.api, self.namespace, self.timeline).start()
        if self.scenario.pull_secret:
            self.add_pull_secret()
        for manifest in self.scenario.manifests:
            self.apply(manifest)
        return self

    def stop_recording(self) -> None:
        """Ask the watches to end; several labs can wind down at the same time."""
        if self._recorder is not None:
            self._recorder.stop()

    def close(self) -> None:
        """Stop recording and delete the namespace (without waiting for it to go)."""
        if self._recorder is not None:
            self._recorder.stop()
            self._recorder.join()
        kube.delete_namespace(self.api, self.namespace)

    def manifest(self, name: str) -> list[dict[str, Any]]:
        """The manifest as it is applied: this namespace, the pushed image."""
        objects = load_manifest(
            self.manifest_path(name), image=self.image, namespace=self.namespace
        )
        if self.scenario.always_pull:
            for obj in objects:
                for container in (obj.get("spec") or {}).get("containers") or []:
                    if container.get("image") == self.image:
                        container["imagePullPolicy"] = "Always"
        return objects

    def manifest_path(self, name: str) -> Path:
        """The file `name` stands for in this run: the student's copy, else the shipped one."""
        return find_manifest(name, self.manifests_dir, self.student_manifests)

    def students_manifests(self) -> list[str]:
        """The scenario's manifests that are the student's own copies."""
        student = self.student_manifests
        return [m for m in self.scenario.manifests if self.manifest_path(m).parent == student]

    def apply(self, manifest: str) -> list[dict[str, Any]]:
        objects = self.manifest(manifest)
        kube.apply(self.api, objects)
        return objects

    def add_pull_secret(self) -> None:
        """The seed's `create secret docker-registry ecr-regcred` + ServiceAccount patch."""
        kube.put_pull_secret(
            self.api, self.namespace, PULL_SECRET, self.registry.docker_config_json()
        )
        kube.add_pull_secret_to_service_account(self.api, self.namespace, PULL_SECRET)

    def delete_pod(self, name: str, *, timeout: float = 60.0) -> None:
        """Delete a pod and wait until it is gone, like `kubectl delete pod` does."""
        self.core.delete_namespaced_pod(name, self.namespace)
        kube.wait_deleted(
            self.core.list_namespaced_pod,
            timeout=timeout,
            what=f"pod {name} to be deleted",
            namespace=self.namespace,
            field_selector=f"metadata.name={name}",
        )

    def run_once(self, name: str, command: list[str]) -> tuple[str, str]:
        """Run ``command`` in a throwaway pod of the lab image (the seed's ``kubectl run
        curl``); its final phase and its output."""
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": name, "image": self.image, "command": command}],
            },
        }
        kube.apply(self.api, [body])
        done = self.wait(
            lambda t: next((o for o in t.pods(name) if o.phase in ("Succeeded", "Failed")), None),
            timeout=POD_START_ALLOWANCE,
            what=f"the {name} pod to finish",
            pod=name,
        )
        return done.phase, self.logs(name)

    def logs(self, pod: str, *, previous: bool = False) -> str:
        return kube.pod_logs(self.api, self.namespace, pod, previous=previous)

    def wait(
        self,
        check: Callable[[Timeline], T | None],
        *,
        timeout: float,
        what: str,
        pod: str | None = None,
    ) -> T:
        """Wait on this scenario's timeline (see `Timeline.wait_until`). The wait fails at
        once when the namespace is being deleted or `pod` (the one it is about) is being
        deleted or was replaced; a timed-out one names kubelet restarts during it."""
        began = datetime.now(UTC)
        try:
            return self.timeline.wait_until(check, timeout=timeout, what=what, gone=self._gone(pod))
        except WaitTimeout as error:
            since = (self.timeline.first_start(pod) if pod else None) or began
            raise WaitTimeout(self._with_kubelet_restarts(str(error), since)) from None

    def _gone(self, pod: str | None) -> Callable[[Timeline], str | None]:
        """Why a wait starting now can no longer come true, once it cannot."""
        before = self.timeline.pods(pod) if pod else []
        latest = before[-1] if before else None
        uid = latest.uid if latest is not None and not latest.deleted else ""

        def why(timeline: Timeline) -> str | None:
            if timeline.namespace_deleted is not None:
                return _("its namespace {namespace} is being deleted").format(
                    namespace=self.namespace
                )
            if pod is None:
                return None
            # from the pod as the wait found it: one already terminating counts too
            since = timeline.pods(pod)[len(before) - 1 if uid else len(before) :]
            if any(o.deleted or o.terminating for o in since):
                return _("pod {pod} is being deleted").format(pod=pod)
            if uid and any(o.uid and o.uid != uid for o in since):
                return _("pod {pod} was replaced by another pod of that name").format(pod=pod)
            return None

        return why

    def _with_kubelet_restarts(self, message: str, since: datetime) -> str:
        """`message` with, at the end of its first line, the kubelet restarts since `since`
        (a restarted kubelet starts its probes and back-off afresh)."""
        restarts = self.kubelet_restarts(since)
        if not restarts:
            return message
        head, _sep, rest = message.partition("\n")
        note = _("; kubelet restarted at {times} during this wait").format(
            times=", ".join(f"{at:%H:%M:%S} UTC ({node})" for at, node in restarts)
        )
        return f"{head}{note}\n{rest}" if rest else head + note

    def kubelet_restarts(self, since: datetime) -> list[tuple[datetime, str]]:
        """(when, node) of each kubelet start since `since`, from the Nodes' "Starting
        kubelet." events; nothing when they cannot be read (the API server away)."""
        try:
            events = self.core.list_namespaced_event(
                "default",
                field_selector="involvedObject.kind=Node,reason=Starting",
                _request_timeout=10,
            ).items
        except (ApiException, urllib3.exceptions.HTTPError, OSError):
            return []
        found = []
        for event in events:
            observed = event_time(event)
            component = (event.source.component if event.source else None) or ""
            if component == "kubelet" and observed >= since:
                found.append((observed, str(event.involved_object.name)))
        return sorted(found)

    def container_started(self, pod: str) -> datetime:
        """When the pod's first container started (waiting for it if need be)."""
        return self.wait(
            lambda t: t.first_start(pod),
            timeout=POD_START_ALLOWANCE,
            what=f"the first container of {pod} to start",
            pod=pod,
        )

    def wait_from_start(
        self, pod: str, check: Callable[[Timeline], T | None], *, budget: float, what: str
    ) -> T:
        """Wait for `check`, allowing `budget` seconds counted from the pod's first start.
        What is seen already counts too, but only if it was seen in time: a check that
        first holds after its deadline fails even when the test looks late."""
        started = self.container_started(pod)
        budget += START_SECOND
        # A second of grace: a check that holds just in time may reach the watch a moment
        # after its deadline, and its own time then says whether it was late.
        timeout = max(1.0, _seconds_left(started, budget))
        found = self.wait(check, timeout=timeout, what=what, pod=pod)
        at = getattr(found, "at", None)
        if isinstance(at, datetime) and (late := (at - started).total_seconds()) > budget:
            message = _("{what}: seen only {late:.1f}s after the first start, past {budget:.1f}s")
            head = message.format(what=what, late=late, budget=budget)
            raise WaitTimeout(
                self._with_kubelet_restarts(head + self.timeline.outage_note(started), started)
                + "\n\n"
                + self.timeline.render()
            )
        return found

    def assert_never(
        self, pod: str, violation: Callable[[Timeline], T | None], *, budget: float, what: str
    ) -> None:
        """Fail if `violation` holds at any time in the `budget` seconds from the first start.

        The window counts from the start the API shows, which may be up to START_SECOND
        early, so it runs that much longer; a window already over is checked once, as it
        stands, without waiting."""
        started = self.container_started(pod)
        window = budget + START_SECOND
        try:
            seen = self.wait(violation, timeout=_seconds_left(started, window), what=what, pod=pod)
        except WaitTimeout:
            _lost, ongoing = self.timeline.unreachable_seconds(started, datetime.now(UTC))
            if not ongoing:
                return
            # Nothing seen, but nothing could be: that proves no absence.
            message = _("no {what} seen, but the API server is unreachable{outage}")
            outage = self.timeline.outage_note(started)
            raise WaitAborted(
                message.format(what=what, outage=outage) + "\n\n" + self.timeline.render()
            ) from None
        raise AssertionError(_("{what} happened: {seen}").format(what=what, seen=seen))

    def pod_spec(self, pod: str) -> Mapping[str, Any]:
        """The spec of ``pod`` from whichever of the scenario's manifests declares it."""
        for manifest in self.scenario.manifests:
            for obj in self.manifest(manifest):
                if obj["kind"] == "Pod" and obj["metadata"]["name"] == pod:
                    spec: Mapping[str, Any] = obj["spec"]
                    return spec
        raise KeyError(f"no pod {pod} in {', '.join(self.scenario.manifests)}")

    def previous_logs(self) -> dict[str, str]:
        """`kubectl logs --previous` of every pod that restarted, by pod name."""
        pods = sorted({obs.pod for obs in self.timeline.pods()})
        return {
            pod: self.logs(pod, previous=True)
            for pod in pods
            if self.timeline.max_restarts(pod) > 0
        }

    def evidence(self) -> str:
        """What a student would look at: the `get -w` view, events and previous logs."""
        parts = [f"namespace {self.namespace}", self.timeline.render()]
        parts += [
            f"--- kubectl logs {pod} --previous\n{logs}"
            for pod, logs in self.previous_logs().items()
        ]
        return "\n\n".join(parts)


def _seconds_left(started: datetime, budget: float) -> float:
    """What remains of `budget` seconds counted from `started` (none once it is over)."""
    return max(0.0, budget - (datetime.now(UTC) - started).total_seconds())
