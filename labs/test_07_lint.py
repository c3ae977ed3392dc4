"""Lint's verdict, proved on a real kubelet: what it flags fails, what it passes holds.

`probelab lint` reads only the manifest. The bad pod's finding (liveness on port 8000) is
then checked against the cluster: kubelet's own events name the same port, the container
is restarted by the time the model says it must be, and `diagnose`, reading the live pod,
proposes the very fix lint did. The good pod lints clean and survives the time in which
its liveness probe, had it failed, would have had it killed.
"""

import pytest

from probelab.diagnose import diagnose, gather
from probelab.lint import lint
from probelab.scenario import ScenarioLab

BAD_MANIFEST, GOOD_MANIFEST = "fastapi-liveness-bad.yaml", "fastapi-liveness-good.yaml"
DEAD_PORT = 8000  # nothing listens there


@pytest.mark.scenario("bad-liveness", BAD_MANIFEST)
def test_the_lint_finding_is_what_kubelet_and_diagnose_report(lab: ScenarioLab) -> None:
    (finding,) = lint(lab.manifest_path(BAD_MANIFEST))
    assert (finding.severity, finding.field) == ("error", "livenessProbe.httpGet.port")
    bad = lab.pod("fastapi-bad")
    bad.is_restarted_by("liveness")
    assert any(f":{DEAD_PORT}/healthz" in e.message for e in bad.events("Unhealthy"))
    cause = diagnose(gather(lab.api, lab.namespace, bad.name))
    assert cause.kind == "wrong-port"
    assert cause.fix == dict(finding.fix)


@pytest.mark.scenario("good-liveness", GOOD_MANIFEST)
def test_a_clean_manifest_outlives_the_time_a_wrong_probe_would_have_taken(
    lab: ScenarioLab,
) -> None:
    assert lint(lab.manifest_path(GOOD_MANIFEST)) == []
    lab.pod("fastapi-good").stays_alive()
