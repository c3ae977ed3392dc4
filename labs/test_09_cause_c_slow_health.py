"""The seed's cause C: a health endpoint slower than the probe's timeout.

Under load (or a tight CPU limit) `/healthz` answers late; kubelet gives up after
`timeoutSeconds` and counts a failure, so a slow but working container is restarted. The
app's HEALTH_DELAY makes every answer that slow; the fix gives the probe a timeout longer
than the answer takes.
"""

import re

import pytest

from probelab.model.lab_app import HEALTH_DELAY
from probelab.model.probes import ProbeSettings, env_of
from probelab.scenario import PodHandle, ScenarioLab

BROKEN, FIXED = "cause-c-broken.yaml", "cause-c-fixed.yaml"
# Go's HTTP client, as kubelet reports a probe that hit its timeout.
TIMED_OUT = re.compile(r"context deadline exceeded|Client\.Timeout exceeded")

pytestmark = pytest.mark.scenario("cause-c", BROKEN, FIXED)


def _delay_against_timeout(pod: PodHandle) -> tuple[float, int]:
    container = pod.model.container()
    return float(env_of(container)[HEALTH_DELAY]), ProbeSettings.of(
        container["livenessProbe"]
    ).timeout


def test_probe_times_out_and_the_container_is_restarted(lab: ScenarioLab) -> None:
    broken = lab.pod("fastapi-c-broken")
    delay, timeout = _delay_against_timeout(broken)
    assert delay > timeout, "the broken probe must time out"
    broken.is_restarted_by("liveness")
    failed = broken.events("Unhealthy", contains="Liveness probe")
    assert any(TIMED_OUT.search(e.message) for e in failed), [e.message for e in failed]


def test_a_timeout_longer_than_the_answer_keeps_it_running(lab: ScenarioLab) -> None:
    fixed = lab.pod("fastapi-c-fixed")
    delay, timeout = _delay_against_timeout(fixed)
    assert delay < timeout, "the fixed probe must wait longer"
    fixed.stays_alive()
