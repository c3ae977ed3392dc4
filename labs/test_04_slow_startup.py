"""Step 4 of the seed: a slow-starting app, with and without a startupProbe.

The app sleeps STARTUP_SLEEP seconds before it listens. With a startupProbe, kubelet holds
liveness and readiness back until the app answers: no restarts, and Ready only after the
sleep. The same app without the startupProbe (the seed's cause A) is killed by its
liveness probe before it ever answers.
"""

from typing import Any

import pytest

from probelab import deadlines
from probelab.lab import APP_BOOT_ALLOWANCE, Lab, grace_seconds

SLOW, SLOW_MANIFEST = "fastapi-slow", "fastapi-slow-startup.yaml"
BARE, BARE_MANIFEST = "fastapi-slow-nostartup", "fastapi-slow-no-startup.yaml"


def _env(spec: Any, name: str) -> str:
    return str(next(e["value"] for e in spec["containers"][0]["env"] if e["name"] == name))


@pytest.mark.scenario("slow-startup", SLOW_MANIFEST)
def test_startup_probe_holds_readiness_until_the_app_answers(lab: Lab) -> None:
    spec = lab.pod_spec(SLOW_MANIFEST, SLOW)
    container = spec["containers"][0]
    sleep = float(_env(spec, "STARTUP_SLEEP"))
    ready = lab.wait_from_start(
        SLOW,
        lambda t: t.first(SLOW, lambda o: o.ready),
        budget=deadlines.readiness_within(
            container["readinessProbe"],
            serving_after=sleep + APP_BOOT_ALLOWANCE,
            startup=container["startupProbe"],
        ),
        what=f"{SLOW} to be Ready",
    )
    started = lab.timeline.first_start(SLOW)
    assert started is not None
    assert (ready.at - started).total_seconds() >= sleep, "Ready before the app could answer"


@pytest.mark.scenario("slow-startup", SLOW_MANIFEST)
def test_startup_probe_prevents_restarts(lab: Lab) -> None:
    container = lab.pod_spec(SLOW_MANIFEST, SLOW)["containers"][0]
    lab.assert_never(
        SLOW,
        lambda t: t.max_restarts(SLOW) > 0,
        budget=deadlines.startup_budget(container["startupProbe"]),
        what=f"a restart of {SLOW} within its startup budget",
    )


@pytest.mark.scenario("slow-no-startup", BARE_MANIFEST)
def test_without_startup_probe_liveness_kills_the_booting_app(lab: Lab) -> None:
    spec = lab.pod_spec(BARE_MANIFEST, BARE)
    assert "startupProbe" not in spec["containers"][0]
    lab.wait_from_start(
        BARE,
        lambda t: t.max_restarts(BARE) >= 1,
        budget=deadlines.time_to_restarts(
            1, spec["containers"][0]["livenessProbe"], grace_seconds(spec)
        ),
        what=f"{BARE} to be restarted by its liveness probe",
    )
    killing = lab.timeline.events(pod=BARE, reason="Killing")
    assert any("failed liveness probe" in e.message for e in killing)
    assert not lab.timeline.first(BARE, lambda o: o.ready), "Ready although never serving"
