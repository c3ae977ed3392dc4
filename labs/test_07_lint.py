"""Lint's verdict, proved on a real kubelet: what it flags fails, what it passes holds.

`probelab lint` reads only the manifest. The bad pod's finding (liveness on port 8000) is
then checked against the cluster: kubelet's own events name the same port, the container
is restarted by the time `predict` says it must be, and `diagnose`, reading the live pod,
proposes the very fix lint did. The good pod lints clean and survives the time in which
the same probe aimed at a dead port would have had it killed.
"""

from typing import Any

import pytest

from probelab import predict
from probelab.diagnose import diagnose, gather
from probelab.lab import Lab
from probelab.lint import lint

BAD, BAD_MANIFEST = "fastapi-bad", "fastapi-liveness-bad.yaml"
GOOD, GOOD_MANIFEST = "fastapi-good", "fastapi-liveness-good.yaml"
DEAD_PORT = 8000  # nothing listens there


def _pod(lab: Lab, manifest: str, name: str) -> predict.PodUnderTest:
    return predict.PodUnderTest(name, lab.pod_spec(manifest, name), f"Pod/{name}")


def _first_restart(timeline: predict.ContainerTimeline) -> float | None:
    return timeline.restarts_at[0] if timeline.restarts_at else None


@pytest.mark.scenario("bad-liveness", BAD_MANIFEST)
def test_the_lint_finding_is_what_kubelet_and_diagnose_report(lab: Lab) -> None:
    (finding,) = lint(lab.manifests_dir / BAD_MANIFEST)
    assert (finding.severity, finding.field) == ("error", "livenessProbe.httpGet.port")
    lab.wait_from_start(
        BAD,
        lambda t: t.max_restarts(BAD) >= 1,
        budget=predict.latest(_pod(lab, BAD_MANIFEST, BAD), _first_restart),
        what=f"{BAD} to be restarted, as lint's finding implies",
    )
    unhealthy = lab.timeline.events(pod=BAD, reason="Unhealthy")
    assert any(f":{DEAD_PORT}/healthz" in e.message for e in unhealthy)
    cause = diagnose(gather(lab.api, lab.namespace, BAD))
    assert cause.kind == "wrong-port"
    assert cause.fix == dict(finding.fix)


@pytest.mark.scenario("good-liveness", GOOD_MANIFEST)
def test_a_clean_manifest_outlives_the_time_a_wrong_probe_would_have_taken(lab: Lab) -> None:
    assert lint(lab.manifests_dir / GOOD_MANIFEST) == []
    good = _pod(lab, GOOD_MANIFEST, GOOD)
    container: dict[str, Any] = dict(good.spec["containers"][0])
    liveness = dict(container["livenessProbe"])
    liveness["httpGet"] = {**liveness["httpGet"], "port": DEAD_PORT}
    container["livenessProbe"] = liveness
    broken = predict.PodUnderTest(GOOD, {**good.spec, "containers": [container]}, good.source)
    lab.assert_stays_alive(GOOD, budget=predict.latest(broken, _first_restart))
