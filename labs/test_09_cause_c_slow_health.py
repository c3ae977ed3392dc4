"""The seed's cause C: a health endpoint slower than the probe's timeout.

Under load (or a tight CPU limit) `/healthz` answers late; kubelet gives up after
`timeoutSeconds` and counts a failure, so a slow but working container is restarted. The
app's HEALTH_DELAY makes every answer that slow; the fix gives the probe a timeout longer
than the answer takes.
"""

import re
from collections.abc import Mapping
from typing import Any

import pytest

from probelab import deadlines
from probelab.lab import Lab, grace_seconds

BROKEN, BROKEN_POD = "cause-c-broken.yaml", "fastapi-c-broken"
FIXED, FIXED_POD = "cause-c-fixed.yaml", "fastapi-c-fixed"
# Go's HTTP client, as kubelet reports a probe that hit its timeout.
TIMED_OUT = re.compile(r"context deadline exceeded|Client\.Timeout exceeded")

pytestmark = pytest.mark.scenario("cause-c", BROKEN, FIXED)


def _health_delay(spec: Mapping[str, Any]) -> float:
    env = spec["containers"][0]["env"]
    return float(next(e["value"] for e in env if e["name"] == "HEALTH_DELAY"))


def test_probe_times_out_and_the_container_is_restarted(lab: Lab) -> None:
    spec = lab.pod_spec(BROKEN, BROKEN_POD)
    liveness = spec["containers"][0]["livenessProbe"]
    assert _health_delay(spec) > liveness["timeoutSeconds"], "the broken probe must time out"
    lab.wait_from_start(
        BROKEN_POD,
        lambda t: t.max_restarts(BROKEN_POD) >= 1,
        budget=deadlines.time_to_restarts(1, liveness, grace_seconds(spec)),
        what=f"{BROKEN_POD} to be restarted by its liveness probe",
    )
    failed = lab.timeline.events(pod=BROKEN_POD, reason="Unhealthy", contains="Liveness probe")
    assert any(TIMED_OUT.search(e.message) for e in failed), [e.message for e in failed]
    killing = lab.timeline.events(pod=BROKEN_POD, reason="Killing")
    assert any("failed liveness probe, will be restarted" in e.message for e in killing)


def test_a_timeout_longer_than_the_answer_keeps_it_running(lab: Lab) -> None:
    spec = lab.pod_spec(FIXED, FIXED_POD)
    liveness = spec["containers"][0]["livenessProbe"]
    assert _health_delay(spec) < liveness["timeoutSeconds"], "the fixed probe must wait longer"
    lab.assert_stays_alive(FIXED_POD, budget=deadlines.liveness_survived(liveness))
