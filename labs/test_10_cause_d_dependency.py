"""The seed's cause D: a health check that includes a dependency.

`fastapi-dep` (a second copy of the app, behind its own Service) stands in for a database.
Both dependent pods check it in readiness; the broken one checks it in liveness too. The
dependency goes down on its own schedule (its `activeDeadlineSeconds`), so nothing here
waits for a test to act: kubelet then restarts the broken pod, which cannot bring the
dependency back, while the fixed pod only turns NotReady and drops out of its Service's
ready endpoints, without a restart.
"""

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client

from probelab import deadlines, kube
from probelab.deadlines import ProbeSettings
from probelab.lab import Lab, grace_seconds

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


def _dependency_down(lab: Lab) -> datetime:
    """When kubelet ended the dependency (its activeDeadlineSeconds ran out).

    Both dependent pods must have been Ready before: their /ready reached it.
    """
    spec = lab.pod_spec(DEPENDENCY_MANIFEST, DEPENDENCY)
    ended = lab.wait_from_start(
        DEPENDENCY,
        lambda t: t.first(DEPENDENCY, lambda o: o.phase == "Failed"),
        budget=spec["activeDeadlineSeconds"] + grace_seconds(spec) + deadlines.KUBELET_LAG,
        what=f"{DEPENDENCY} to reach its activeDeadlineSeconds and stop",
    )
    for pod in (BROKEN, FIXED):
        ready = lab.timeline.first(pod, lambda o: o.ready)
        assert ready is not None and ready.at < ended.at, f"{pod} was not Ready in time"
    return ended.at


def _pod_ip(lab: Lab, pod: str) -> str:
    status = client.CoreV1Api(lab.api).read_namespaced_pod(pod, lab.namespace).status
    assert status is not None and status.pod_ip, f"{pod} has no IP"
    return str(status.pod_ip)


def _listed_not_ready(ip: str) -> Callable[[client.V1EndpointSlice], bool]:
    """Whether a slice lists `ip` as an endpoint that is not ready (out of rotation)."""

    def check(slice_: client.V1EndpointSlice) -> bool:
        return any(
            ip in (e.addresses or []) and not (e.conditions and e.conditions.ready)
            for e in slice_.endpoints or []
        )

    return check


def test_liveness_on_the_dependency_restarts_the_pod(lab: Lab) -> None:
    down_at = _dependency_down(lab)
    liveness = _probe(lab, BROKEN_MANIFEST, BROKEN, "livenessProbe")
    assert liveness["httpGet"]["path"] == "/ready", "the broken pod's liveness checks /ready"
    grace = grace_seconds(lab.pod_spec(BROKEN_MANIFEST, BROKEN))
    restart_within = deadlines.time_to_restarts(1, _from_failure(liveness), grace)
    restarted = lab.wait(
        lambda t: t.first(BROKEN, lambda o: o.restarts > 0),
        timeout=max(1.0, restart_within - _seconds_since(down_at)),
        what=f"{BROKEN} to be restarted after its dependency went down",
    )
    assert restarted.at > down_at, "restarted while the dependency was still up"
    failed = lab.timeline.events(pod=BROKEN, reason="Unhealthy", contains="Liveness probe failed")
    assert any(DEPENDENCY_DOWN in e.message for e in failed), [e.message for e in failed]
    killing = lab.timeline.events(pod=BROKEN, reason="Killing")
    assert any("failed liveness probe, will be restarted" in e.message for e in killing)


def test_readiness_on_the_dependency_only_takes_it_out_of_the_service(lab: Lab) -> None:
    down_at = _dependency_down(lab)
    readiness = _probe(lab, FIXED_MANIFEST, FIXED, "readinessProbe")
    # Readiness turns False by the same rule that decides a failing liveness probe.
    not_ready_within = deadlines.liveness_kill_after(_from_failure(readiness))
    lab.wait(
        lambda t: (latest := t.latest(FIXED)) is not None and not latest.ready,
        timeout=max(1.0, not_ready_within - _seconds_since(down_at)),
        what=f"{FIXED} to turn NotReady after its dependency went down",
    )
    kube.watch_until(
        client.DiscoveryV1Api(lab.api).list_namespaced_endpoint_slice,
        _listed_not_ready(_pod_ip(lab, FIXED)),
        timeout=max(1.0, not_ready_within + deadlines.KUBELET_LAG - _seconds_since(down_at)),
        what=f"{FIXED} to be listed as a not-ready endpoint of {SERVICE}",
        namespace=lab.namespace,
        label_selector=f"kubernetes.io/service-name={SERVICE}",
    )
    failed = lab.timeline.events(pod=FIXED, reason="Unhealthy", contains="Readiness probe failed")
    assert any(DEPENDENCY_DOWN in e.message for e in failed), [e.message for e in failed]

    # Long enough for a liveness probe that checked the dependency to have killed it.
    liveness = _probe(lab, FIXED_MANIFEST, FIXED, "livenessProbe")
    started = lab.container_started(FIXED)
    lab.assert_stays_alive(
        FIXED,
        budget=(down_at - started).total_seconds()
        + deadlines.liveness_survived(_from_failure(liveness)),
        what=f"a restart or failed liveness probe of {FIXED} while its dependency is down",
    )
