"""The seed's cause D: a health check that includes a dependency.

`fastapi-dep` (a second copy of the app, behind its own Service) stands in for a database.
Both dependent pods check it in readiness; the broken one checks it in liveness too. When
the test deletes the dependency's pod, kubelet restarts the broken pod, which cannot
bring the dependency back, while the fixed pod only turns NotReady and leaves its
Service's endpoints, without a restart.
"""

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client

from probelab import deadlines, kube
from probelab.deadlines import ProbeSettings
from probelab.lab import APP_BOOT_ALLOWANCE, POD_START_ALLOWANCE, Lab, grace_seconds

DEPENDENCY, DEPENDENCY_MANIFEST = "fastapi-dep", "cause-d-dependency.yaml"
BROKEN, BROKEN_MANIFEST = "fastapi-d-broken", "cause-d-broken.yaml"
FIXED, FIXED_MANIFEST = "fastapi-d-fixed", "cause-d-fixed.yaml"
SERVICE = "fastapi-d-svc"
DEPENDENCY_DOWN = "statuscode: 503"  # what /ready answers without its dependency

pytestmark = pytest.mark.scenario("cause-d", DEPENDENCY_MANIFEST, BROKEN_MANIFEST, FIXED_MANIFEST)


def _probe(lab: Lab, manifest: str, pod: str, kind: str) -> Mapping[str, Any]:
    probe: Mapping[str, Any] = lab.pod_spec(manifest, pod)["containers"][0][kind]
    return probe


def _from_failure(probe: Mapping[str, Any]) -> ProbeSettings:
    """The probe's settings for timing counted from when its check starts failing.

    kubelet's rules are the same as from container start (failureThreshold consecutive
    failures a period apart, the last taking up to the timeout) except that the initial
    delay is long past, so deadlines use these settings with it set to zero.
    """
    settings = ProbeSettings.from_manifest(probe)
    assert settings is not None
    return replace(settings, initial_delay=0)


def _seconds_since(moment: datetime) -> float:
    return (datetime.now(UTC) - moment).total_seconds()


def _wait_ready(lab: Lab, manifest: str, pod: str) -> None:
    """Ready means /ready reached the dependency (the init container waited for it)."""
    lab.wait_from_start(
        pod,
        lambda t: t.first(pod, lambda o: o.ready),
        budget=deadlines.readiness_within(
            _probe(lab, manifest, pod, "readinessProbe"), serving_after=APP_BOOT_ALLOWANCE
        ),
        what=f"{pod} to be Ready while its dependency is up",
    )


def _take_dependency_down(lab: Lab) -> datetime:
    """Once both pods are Ready and the fixed one serves, delete the dependency's pod (once
    per scenario); returns when it was gone."""
    if lab.timeline.first(DEPENDENCY, lambda o: o.deleted) is None:
        _wait_ready(lab, BROKEN_MANIFEST, BROKEN)
        _wait_ready(lab, FIXED_MANIFEST, FIXED)
        _watch_endpoint(
            lab,
            _pod_ip(lab, FIXED),
            ready=True,
            timeout=POD_START_ALLOWANCE,
            what=f"{FIXED} to be a ready endpoint of {SERVICE}",
        )
        grace = grace_seconds(lab.pod_spec(DEPENDENCY_MANIFEST, DEPENDENCY))
        lab.delete_pod(DEPENDENCY, timeout=grace + deadlines.KUBELET_LAG)
    gone = lab.wait(
        lambda t: t.first(DEPENDENCY, lambda o: o.deleted),
        timeout=deadlines.KUBELET_LAG,
        what=f"the deletion of {DEPENDENCY} in the timeline",
    )
    return gone.at


def _pod_ip(lab: Lab, pod: str) -> str:
    status = client.CoreV1Api(lab.api).read_namespaced_pod(pod, lab.namespace).status
    assert status is not None and status.pod_ip, f"{pod} has no IP"
    return str(status.pod_ip)


def _endpoint(ip: str, *, ready: bool) -> Callable[[client.V1EndpointSlice], bool]:
    """Whether a slice lists `ip` as a ready endpoint (ready=True) or does not (False)."""

    def check(slice_: client.V1EndpointSlice) -> bool:
        listed = any(
            ip in (e.addresses or []) and e.conditions is not None and bool(e.conditions.ready)
            for e in slice_.endpoints or []
        )
        return listed == ready

    return check


def _watch_endpoint(lab: Lab, ip: str, *, ready: bool, timeout: float, what: str) -> None:
    kube.watch_until(
        client.DiscoveryV1Api(lab.api).list_namespaced_endpoint_slice,
        _endpoint(ip, ready=ready),
        timeout=timeout,
        what=what,
        namespace=lab.namespace,
        label_selector=f"kubernetes.io/service-name={SERVICE}",
    )


def test_liveness_on_the_dependency_restarts_the_pod(lab: Lab) -> None:
    down_at = _take_dependency_down(lab)
    liveness = _probe(lab, BROKEN_MANIFEST, BROKEN, "livenessProbe")
    assert liveness["httpGet"]["path"] == "/ready", "the broken pod's liveness checks /ready"
    grace = grace_seconds(lab.pod_spec(BROKEN_MANIFEST, BROKEN))
    restart_within = deadlines.time_to_restarts(1, _from_failure(liveness), grace)
    lab.wait(
        lambda t: t.max_restarts(BROKEN) >= 1,
        timeout=max(1.0, restart_within - _seconds_since(down_at)),
        what=f"{BROKEN} to be restarted after its dependency went down",
    )
    failed = lab.timeline.events(pod=BROKEN, reason="Unhealthy", contains="Liveness probe failed")
    assert any(DEPENDENCY_DOWN in e.message for e in failed), [e.message for e in failed]
    killing = lab.timeline.events(pod=BROKEN, reason="Killing")
    assert any("failed liveness probe, will be restarted" in e.message for e in killing)


def test_readiness_on_the_dependency_only_takes_it_out_of_the_service(lab: Lab) -> None:
    down_at = _take_dependency_down(lab)
    readiness = _probe(lab, FIXED_MANIFEST, FIXED, "readinessProbe")
    # Readiness turns False by the same rule that decides a failing liveness probe.
    left_within = deadlines.liveness_kill_after(_from_failure(readiness)) + deadlines.KUBELET_LAG
    lab.wait(
        lambda t: (latest := t.latest(FIXED)) is not None and not latest.ready,
        timeout=max(1.0, left_within - _seconds_since(down_at)),
        what=f"{FIXED} to turn NotReady after its dependency went down",
    )
    _watch_endpoint(
        lab,
        _pod_ip(lab, FIXED),
        ready=False,
        timeout=max(1.0, left_within - _seconds_since(down_at)),
        what=f"{FIXED} to leave the ready endpoints of {SERVICE}",
    )
    failed = lab.timeline.events(pod=FIXED, reason="Unhealthy", contains="Readiness probe failed")
    assert any(DEPENDENCY_DOWN in e.message for e in failed), [e.message for e in failed]

    # Long enough for a liveness probe that checked the dependency to have killed it.
    liveness = _probe(lab, FIXED_MANIFEST, FIXED, "livenessProbe")
    started = lab.container_started(FIXED)
    lab.assert_never(
        FIXED,
        lambda t: (
            t.max_restarts(FIXED) > 0
            or t.events(pod=FIXED, reason="Unhealthy", contains="Liveness probe failed")
        ),
        budget=(down_at - started).total_seconds()
        + deadlines.liveness_kill_after(_from_failure(liveness))
        + liveness["periodSeconds"],
        what=f"a restart or failed liveness probe of {FIXED} while its dependency is down",
    )
