"""Step 4 of the seed: a slow-starting app, with and without a startupProbe.

The app sleeps STARTUP_SLEEP seconds before it listens. With a startupProbe, kubelet holds
liveness and readiness back until the app answers: no restarts, and Ready only after the
sleep. The same app without the startupProbe (the seed's cause A) is killed by its
liveness probe before it ever answers.
"""

import pytest

from probelab.model.lab_app import STARTUP_SLEEP
from probelab.model.probes import env_of
from probelab.scenario import ScenarioLab

SLOW_MANIFEST, BARE_MANIFEST = "fastapi-slow-startup.yaml", "fastapi-slow-no-startup.yaml"


@pytest.mark.scenario("slow-startup", SLOW_MANIFEST)
def test_startup_probe_holds_readiness_until_the_app_answers(lab: ScenarioLab) -> None:
    slow = lab.pod("fastapi-slow")
    ready = slow.becomes_ready()
    sleep = float(env_of(slow.model.container())[STARTUP_SLEEP])
    started = lab.container_started(slow.name)
    assert (ready.at - started).total_seconds() >= sleep, "Ready before the app could answer"


@pytest.mark.scenario("slow-startup", SLOW_MANIFEST)
def test_startup_probe_prevents_restarts(lab: ScenarioLab) -> None:
    lab.pod("fastapi-slow").survives_startup()


@pytest.mark.scenario("slow-no-startup", BARE_MANIFEST)
def test_without_startup_probe_liveness_kills_the_booting_app(lab: ScenarioLab) -> None:
    bare = lab.pod("fastapi-slow-nostartup")
    assert "startupProbe" not in bare.model.container()
    bare.is_restarted_by("liveness")
    assert not lab.timeline.first(bare.name, lambda o: o.ready), "Ready although never serving"
