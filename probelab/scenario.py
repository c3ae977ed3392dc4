"""The lab in the tutorial's terms: pod and Service handles whose checks wait by themselves.

``bad = lab.pod("fastapi-bad")`` then ``bad.restarts_at_least(3)``,
``bad.shows("CrashLoopBackOff")``, ``good.becomes_ready()``, ``good.stays_alive()``,
``svc.serves(good)``. Every check takes its deadline from the kubelet model
(:mod:`probelab.model.waits`) for the pod's own spec and the server's kubelet version,
counted from the pod's first container start, and fails with the same evidence (the
``kubectl get pod -w`` view, events, previous logs) as every other lab wait.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from kubernetes import client

from probelab.i18n import _
from probelab.lab import Lab
from probelab.model.app import app_for
from probelab.model.errors import ModelError
from probelab.model.pods import PodUnderTest
from probelab.model.simulate import AppFor
from probelab.model.waits import (
    Forecast,
    Moment,
    active_deadline_end,
    crash_loop_back_off,
    first_kill,
    fixed_apps,
    forecast,
    not_ready_after,
    nth_restart,
    ready,
    with_failing,
    with_liveness_like_readiness,
)
from probelab.timeline import EventObservation, PodObservation, Timeline

T = TypeVar("T")


@dataclass(frozen=True)
class WaitRecord:
    """One lab wait: its forecast and what happened, for the deadline benchmark."""

    scenario: str
    pod: str
    what: str
    expected: float
    deadline: float
    observed: float | None  # seconds since the first start; None for "never happened"


class ScenarioLab(Lab):
    """A scenario as the labs see it: its pods and Services by name, and a record of every
    wait (for benchmarks/lab_deadlines.py)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waits: list[WaitRecord] = []
        # Forecasts by (pod, dependency down at, what): several tests wait for the same
        # moment of one pod, and each forecast plays the model some sixty times.
        self.forecasts: dict[tuple[str, float | None, str], Forecast] = {}

    def pod(self, name: str) -> PodHandle:
        """The tutorial's handle on one of this scenario's pods."""
        return PodHandle(self, name)

    def service(self, name: str) -> ServiceHandle:
        return ServiceHandle(self, name)

    def service_account_pull_secrets(self, account: str = "default") -> list[str]:
        """``kubectl get sa default -o jsonpath='{.imagePullSecrets}'``, as names."""
        found = client.CoreV1Api(self.api).read_namespaced_service_account(account, self.namespace)
        return [str(ref.name) for ref in found.image_pull_secrets or []]

    def secret_type(self, name: str) -> str:
        """The type of a Secret (the seed's is kubernetes.io/dockerconfigjson)."""
        return str(client.CoreV1Api(self.api).read_namespaced_secret(name, self.namespace).type)


class PodHandle:
    """One pod of a scenario, as the tutorial talks about it."""

    def __init__(
        self, lab: ScenarioLab, name: str, *, dependency_down: float | None = None
    ) -> None:
        self.lab = lab
        self.name = name
        self.spec = lab.pod_spec(name)
        self.model = PodUnderTest(name, self.spec, f"Pod/{name}")
        self.dependency_down = dependency_down  # seconds after this pod's first start
        self.apps: AppFor = app_for()
        if dependency_down is not None:
            self.apps = fixed_apps(self.apps, ready_fails_from=dependency_down)

    def with_dependency_down(self, at: datetime) -> PodHandle:
        """This pod as the model sees it once its readiness' dependency went away at ``at``."""
        since = (at - self.lab.container_started(self.name)).total_seconds()
        return PodHandle(self.lab, self.name, dependency_down=since)

    # what the model says
    def forecast(self, moment: Moment, *, what: str, pod: PodUnderTest | None = None) -> Forecast:
        """The model's deadline; a spec with which kubelet can never get there (a student's
        readiness probe on the wrong port) fails the check at once, saying so."""
        key = (self.name, self.dependency_down, what)
        try:
            if key not in self.lab.forecasts:
                self.lab.forecasts[key] = forecast(
                    pod or self.model, moment, apps=self.apps, kubelet=self.lab.kubelet, what=what
                )
            return self.lab.forecasts[key]
        except ModelError as error:
            message = _("{what}: with this pod's spec kubelet never gets there ({why})")
            raise AssertionError(
                message.format(what=what, why=error) + "\n\n" + self.lab.timeline.render()
            ) from None

    def _wait(self, check: Callable[[Timeline], T | None], moment: Moment, what: str,
              pod: PodUnderTest | None = None) -> T:  # fmt: skip
        expected = self.forecast(moment, what=what, pod=pod)
        started = self.lab.container_started(self.name)
        found = self.lab.wait_from_start(self.name, check, budget=expected.latest, what=what)
        self._record(what, expected, started, getattr(found, "at", None))
        return found

    def _record(
        self, what: str, expected: Forecast, started: datetime, at: datetime | None
    ) -> None:
        observed = None if at is None else (at - started).total_seconds()
        self.lab.waits.append(
            WaitRecord(
                self.lab.scenario.name,
                self.name,
                what,
                expected.expected,
                expected.latest,
                observed,
            )
        )

    # the tutorial's checks
    def restarts_at_least(self, n: int) -> PodObservation:
        """RESTARTS reaches ``n`` by the model's latest time for the n-th restart."""
        return self._wait(
            lambda t: t.first(self.name, lambda o: o.restarts >= n),
            nth_restart(n),
            _("{pod} to restart {n} time(s)").format(pod=self.name, n=n),
        )

    def shows(self, status: str) -> PodObservation:
        """STATUS shows ``status`` (CrashLoopBackOff) by the model's latest time for it."""
        if status != "CrashLoopBackOff":
            raise ValueError(f"the model forecasts CrashLoopBackOff, not {status!r}")
        return self._wait(
            lambda t: t.first(self.name, lambda o: o.status == status),
            crash_loop_back_off,
            _("{pod} to show {status}").format(pod=self.name, status=status),
        )

    def becomes_ready(self) -> PodObservation:
        """READY turns 1/1 by the model's latest time for the readiness probe."""
        return self._wait(
            lambda t: t.first(self.name, lambda o: o.ready),
            ready,
            _("{pod} to be Ready").format(pod=self.name),
        )

    def turns_unready(self) -> PodObservation:
        """READY falls back to 0/1 after its dependency went down (a readiness failure)."""
        if self.dependency_down is None:
            raise ValueError("turns_unready() needs with_dependency_down(...) first")
        since = self.dependency_down
        return self._wait(
            lambda t: next(
                (o for o in t.pods(self.name) if not o.ready and o.at > self._at(since)), None
            ),
            partial(not_ready_after, since=since),
            _("{pod} to turn NotReady after its dependency went down").format(pod=self.name),
        )

    def _at(self, since: float) -> datetime:
        return self.lab.container_started(self.name) + timedelta(seconds=since)

    def ends(self) -> PodObservation:
        """The pod's activeDeadlineSeconds runs out and kubelet ends it (phase Failed)."""
        what = _("{pod} to reach its activeDeadlineSeconds and stop").format(pod=self.name)
        expected = active_deadline_end(self.model, apps=self.apps, kubelet=self.lab.kubelet)
        started = self.lab.container_started(self.name)
        found = self.lab.wait_from_start(
            self.name, lambda t: t.first(self.name, lambda o: o.phase == "Failed"),
            budget=expected.latest, what=what,
        )  # fmt: skip
        self._record(what, expected, started, found.at)
        return found

    def is_restarted_by(self, kind: str = "liveness") -> PodObservation:
        """A first restart, caused by the ``kind`` probe (its Killing event says so)."""
        seen = self.restarts_at_least(1)
        killing = self.events("Killing")
        assert any(f"failed {kind} probe" in e.message for e in killing), _(
            "{pod} restarted, but no Killing event names its {kind} probe: {events}"
        ).format(pod=self.name, kind=kind, events="; ".join(e.message for e in killing))
        return seen

    def stays_alive(self) -> None:
        """No restart, and no failed liveness probe once the pod was Ready, through the
        window in which a failing liveness probe with these settings would surely have
        killed the container (after its dependency went down: a liveness probe checking
        that dependency). A probe failing while a slow node still boots the app, below
        failureThreshold, is kubelet being right, not the pod being wrong."""
        variant = (
            with_failing(self.model, "liveness")
            if self.dependency_down is None
            else with_liveness_like_readiness(self.model)
        )
        self._never(
            variant,
            lambda t: t.max_restarts(self.name) > 0 or self._liveness_failed_once_ready(t),
            _("a restart or failed liveness probe of {pod}").format(pod=self.name),
        )

    def _liveness_failed_once_ready(self, timeline: Timeline) -> list[EventObservation]:
        ready = timeline.first(self.name, lambda o: o.ready)
        if ready is None:
            return []
        failed = timeline.events(
            pod=self.name, reason="Unhealthy", contains="Liveness probe failed"
        )
        # Events carry whole seconds: only those from a later second surely came after.
        return [e for e in failed if e.at.replace(microsecond=0) > ready.at.replace(microsecond=0)]

    def survives_startup(self) -> None:
        """No restart through the window in which a failing startup probe would kill."""
        self._never(
            with_failing(self.model, "startup"),
            lambda t: t.max_restarts(self.name) > 0,
            _("a restart of {pod} within its startup budget").format(pod=self.name),
        )

    def _never(
        self, variant: PodUnderTest, violation: Callable[[Timeline], object], what: str
    ) -> None:
        window = self.forecast(
            first_kill, what=_("the kill that would end {what}").format(what=what), pod=variant
        )
        started = self.lab.container_started(self.name)
        self.lab.assert_never(self.name, violation, budget=window.latest, what=what)
        self._record(_("no {what}").format(what=what), window, started, None)

    def events(self, reason: str, contains: str | None = None) -> list[EventObservation]:
        """This pod's events with ``reason`` (Unhealthy, Killing, BackOff, ...)."""
        return self.lab.timeline.events(pod=self.name, reason=reason, contains=contains)

    def previous_logs(self) -> str:
        """``kubectl logs --previous``: the output of the instance kubelet killed last."""
        return self.lab.logs(self.name, previous=True)

    def ip(self) -> str:
        status = (
            client.CoreV1Api(self.lab.api).read_namespaced_pod(self.name, self.lab.namespace).status
        )
        assert status is not None and status.pod_ip, _("{pod} has no IP").format(pod=self.name)
        return str(status.pod_ip)


class ServiceHandle:
    """A Service of a scenario: which pods it sends traffic to."""

    def __init__(self, lab: ScenarioLab, name: str) -> None:
        self.lab = lab
        self.name = name

    def serves(self, pod: PodHandle) -> None:
        """The Ready pod is a ready endpoint of this Service (EndpointSlice)."""
        self._listed(pod, ready=True)

    def lists_unready(self, pod: PodHandle) -> None:
        """The pod is still listed, but as a not-ready endpoint: out of rotation."""
        self._listed(pod, ready=False)

    def answers(self, path: str) -> str:
        """The body of ``GET http://<service><path>`` from a throwaway pod (the seed's ``kubectl
        run curl``), by name through cluster DNS and the Service's virtual IP.

        Call it after `serves`: the EndpointSlice lists the pod before kube-proxy has routed
        the virtual IP to it, and until then the node refuses the connection. The client
        retries only a refused connection, and only for `PROXY_LAG` seconds."""
        url = f"http://{self.name}{path}"
        phase, output = self.lab.run_once(
            "curl", ["python3", "-c", _CLIENT.format(url=url, lag=PROXY_LAG)]
        )
        assert phase == "Succeeded", _("GET {url} from a pod failed:\n{output}").format(
            url=url, output=output
        )
        return output.rstrip("\n").rpartition("\n")[2]

    def _listed(self, pod: PodHandle, *, ready: bool) -> None:
        ip = pod.ip()
        state = _("ready") if ready else _("not-ready")
        self.lab.wait(
            lambda t: next((s for s in t.slices(self.name) if s.lists(ip, ready=ready)), None),
            timeout=ENDPOINT_LAG,
            what=_("{pod} ({ip}) to be a {state} endpoint of {service}").format(
                pod=pod.name, ip=ip, state=state, service=self.name
            ),
        )


ENDPOINT_LAG = 10.0
"""Seconds from a pod's Ready change to its EndpointSlice showing it: the endpoint-slice
controller's batching (1 s by default) plus a busy API server. No probe setting governs it."""

PROXY_LAG = 10.0
"""Seconds from an endpoint showing ready in its EndpointSlice to kube-proxy routing the
Service's IP to it: kube-proxy's iptables sync runs at most once per `minSyncPeriod` (1 s by
default, kind's and the local cluster's setting), then writes every rule with iptables-restore,
slow on a busy node. A kube-proxy ten times slower than that fails the lab."""

_CLIENT = """
import sys, time, urllib.error, urllib.request
deadline = time.monotonic() + {lag}
while True:
    try:
        body = urllib.request.urlopen({url!r}, timeout=5).read().decode()
        break
    except urllib.error.URLError as error:
        if not isinstance(error.reason, ConnectionRefusedError) or time.monotonic() > deadline:
            raise
        print("refused: kube-proxy has not routed the Service yet", file=sys.stderr, flush=True)
        time.sleep(0.2)
print(body)
"""
"""The in-pod client: the lab image has Python but no curl. It polls, as nothing in the API
tells when kube-proxy has written its rules; the last line it prints is the body."""
