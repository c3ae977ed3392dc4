"""`diagnose` names the seed's causes on a real cluster, from read-only evidence.

Every case runs at once in its own namespace. Each test waits, on the case's recorded
timeline, for the evidence a student would look at (a probe kill and a restart, or a pod
leaving Ready) by a deadline the model's latest time derives from the manifest, then asks
`diagnose` what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from probelab.diagnose import Cause, diagnose, gather, report
from probelab.errors import ProbelabError
from probelab.lab import Lab, Scenario, namespace_name
from probelab.model.app import app_for
from probelab.model.schema import ContainerTimeline
from probelab.model.waits import forecast, not_ready_after_ready
from probelab.predict import read_pods
from probelab.registries.base import Registry
from probelab.timeline import Timeline

MANIFESTS = Path(__file__).resolve().parents[2] / "benchmarks" / "manifests"
# case -> (cause kind, the fix it proposes for the container)
EXPECTED: dict[str, tuple[str, dict[str, Any]]] = {
    "wrong-port": ("wrong-port", {"livenessProbe": {"httpGet": {"port": 8080}}}),
    "wrong-path": ("wrong-path", {"livenessProbe": {"httpGet": {"path": "/healthz"}}}),
    "slow-start": ("slow-start", {}),
    "slow-health": ("timeout", {"livenessProbe": {"timeoutSeconds": 4}}),
    "dependency-in-liveness": ("dependency", {"livenessProbe": {"httpGet": {"path": "/healthz"}}}),
    "startup-too-short": ("startup-budget", {"startupProbe": {"failureThreshold": 11}}),
    "readiness-only": ("not-ready", {}),
}


@pytest.fixture(scope="module")
def cases(
    request: pytest.FixtureRequest, kube_api: client.ApiClient, lab_image: str, registry: Registry
) -> Iterator[dict[str, Lab]]:
    prefix = request.config.getoption("namespace_prefix")
    labs: dict[str, Lab] = {}
    try:
        for case in EXPECTED:
            lab = Lab(
                kube_api,
                Scenario(f"diagnose-{case}", (f"{case}.yaml",)),
                namespace=namespace_name(prefix, f"diagnose-{case}"),
                run_id="diagnose",
                image=lab_image,
                registry=registry,
                manifests_dir=MANIFESTS,
            )
            labs[case] = lab
            lab.start()
        yield labs
    finally:
        for lab in labs.values():
            lab.close()


def _left_ready(pod: str) -> Callable[[Timeline], bool]:
    def check(timeline: Timeline) -> bool:
        seen = timeline.pods(pod)
        first = next((i for i, o in enumerate(seen) if o.ready), None)
        return first is not None and any(not o.ready for o in seen[first:])

    return check


def _first_restart(c: ContainerTimeline) -> float | None:
    return c.restarts_at[0] if c.restarts_at else None


def _evidence(case: str) -> tuple[Callable[[Timeline], object], float]:
    """What to wait for before diagnosing, and until when (seconds from first start)."""
    (pod,) = read_pods(MANIFESTS / f"{case}.yaml")
    if case == "readiness-only":
        return _left_ready(case), forecast(pod, not_ready_after_ready, apps=app_for()).latest
    return (
        lambda t: t.max_restarts(case) >= 1 and t.events(pod=case, reason="Killing"),
        forecast(pod, _first_restart, apps=app_for()).latest,
    )


@pytest.mark.cluster
@pytest.mark.parametrize("case", list(EXPECTED))
def test_diagnose_names_the_cause(
    case: str, cases: dict[str, Lab], kube_api: client.ApiClient
) -> None:
    lab = cases[case]
    check, deadline = _evidence(case)
    lab.wait_from_start(case, check, budget=deadline, what=f"evidence for {case}")
    evidence = gather(kube_api, lab.namespace, case)
    cause: Cause = diagnose(evidence)
    kind, fix = EXPECTED[case]
    text = report(evidence, cause)
    assert cause.kind == kind, text
    if fix:
        assert cause.fix == fix, text
    assert cause.container == "app"
    assert "\n" not in cause.sentence
    for section in ("spec", "status", "events", "cause"):
        assert f"\n{section}\n" in text


@pytest.mark.cluster
def test_slow_start_fix_adds_a_startup_probe_long_enough(
    cases: dict[str, Lab], kube_api: client.ApiClient
) -> None:
    lab = cases["slow-start"]
    check, deadline = _evidence("slow-start")
    lab.wait_from_start("slow-start", check, budget=deadline, what="a slow-start restart")
    cause = diagnose(gather(kube_api, lab.namespace, "slow-start"))
    startup = cause.fix["startupProbe"]
    assert startup["httpGet"]["port"] == 8080
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 20  # the app's sleep
    assert "spec:\n  containers:\n  - name: app\n    startupProbe:" in cause.patch()


@pytest.mark.cluster
def test_missing_pod_is_one_clear_line(kube_api: client.ApiClient) -> None:
    with pytest.raises(ProbelabError, match="pod kube-system/no-such-pod not found"):
        gather(kube_api, "kube-system", "no-such-pod")
