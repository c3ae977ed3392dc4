"""The kubelet model, rule by rule, with no cluster: each test states a rule of kubelet's
source and checks the timeline the model plays out for it."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from probelab.cli import main
from probelab.errors import ProbelabError
from probelab.model.app import App, app_for, probe_outcome
from probelab.model.errors import ModelError
from probelab.model.node import Latencies, Node
from probelab.model.pods import PodUnderTest
from probelab.model.rules import Kubelet
from probelab.model.schema import ContainerTimeline
from probelab.model.simulate import _Backoff, predict_pod
from probelab.predict import predict, read_pods

ROOT = Path(__file__).resolve().parents[2]
LAB = "YOUR_REGISTRY/fastapi-health:v1"  # tagged: no pull before each start
# A node with round latencies, so expected times can be worked out by hand.
NODE = Node(sandbox=0.5, create=0.1, notice=0.5, publish=0.0, check=0.0, jitter=0.25,
            pickup=0.5, app_boot=0.7, app_reboot=0.7, app_stop=0.2, app_exec=0.2,
            second=0.0, follow_up=1.0)  # fmt: skip


def pod(
    *, env: dict[str, str] | None = None, image: str = LAB, grace: int | None = None,
    restart: str | None = None, **probes: dict[str, Any],
) -> PodUnderTest:  # fmt: skip
    container: dict[str, Any] = {"name": "app", "image": image, "ports": [
        {"containerPort": 8080, "name": "http"}]}  # fmt: skip
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    container.update({f"{kind}Probe": probe for kind, probe in probes.items()})
    spec: dict[str, Any] = {"containers": [container]}
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    if restart is not None:
        spec["restartPolicy"] = restart
    return PodUnderTest("p", spec, "Pod/p")


def run(p: PodUnderTest, duration: float = 120, **kwargs: Any) -> ContainerTimeline:
    kwargs.setdefault("node", NODE)
    kwargs.setdefault("apps", app_for())
    (container,) = predict_pod(p, duration=duration, **kwargs).containers
    return container


def kinds(c: ContainerTimeline, kind: str) -> list[float]:
    return [e.at for e in c.events if e.kind == kind]


WRONG_PORT = {"httpGet": {"path": "/healthz", "port": 8000}, "initialDelaySeconds": 3,
              "periodSeconds": 5, "timeoutSeconds": 1, "failureThreshold": 2}  # fmt: skip


def test_seed_bad_pod_restarts_then_backs_off() -> None:
    # Workers tick at -0.5 + 5k. Ages 4.5 and 9.5 fail (3 s delay), kill at 9.5, the
    # uvicorn stop takes 0.2 s and the next instance runs 0.1 s later: every 10 s.
    c = run(pod(liveness=WRONG_PORT), duration=80)
    assert kinds(c, "killing")[:4] == pytest.approx([9.5, 19.5, 29.5, 39.5])
    assert c.restarts_at[:3] == pytest.approx([9.8, 19.8, 29.8])
    # Kill 3 ends 10.0 s after exit 2 against a 10 s window: at once, but noted.
    assert any("10s back-off window" in note for note in c.notes)
    # Kill 4: 10 s < 20 s window. Shown at the next relist; restart when the window has
    # passed plus the requeue jitter on what was left, plus the sync loop's tick.
    exit_4 = 39.7
    assert c.crash_loop_back_off_at == pytest.approx(exit_4 + 0.5)
    assert c.restarts_at[3] == pytest.approx(exit_4 + 0.5 + 19.5 * 1.25 + 0.5 + 0.1)
    assert kinds(c, "back-off")[0] == pytest.approx(exit_4)


def test_first_restart_is_immediate_and_windows_double_to_the_cap() -> None:
    always_failing = {"httpGet": {"port": 9}, "periodSeconds": 1, "failureThreshold": 1,
                      "initialDelaySeconds": 1}  # fmt: skip
    c = run(pod(liveness=always_failing), duration=3000)
    exits = kinds(c, "killing")
    gaps = [start - kill for kill, start in zip(exits, c.restarts_at, strict=False)]
    assert gaps[0] == pytest.approx(0.3)  # stop + create: no back-off at all
    waits = [g for g in gaps if g > 1]
    # Each wait covers the window (10, 20, ... 300 s) plus at most the requeue jitter.
    windows = [min(10.0 * 2**n, 300.0) for n in range(len(waits))]
    assert len(waits) > 8
    for wait, window in zip(waits, windows, strict=True):
        assert window <= wait <= 1.25 * window + 2, (wait, window)


def test_window_counts_from_the_previous_exit_after_a_probe_kill() -> None:
    # Runs of 12 s: windows 10 s passes (restart at once), 20 s does not.
    probe = {"httpGet": {"port": 8000}, "periodSeconds": 4, "failureThreshold": 3}
    c = run(pod(liveness=probe), duration=60)
    assert len([t for t in c.restarts_at if t < 40]) == 3
    assert c.crash_loop_back_off_at is not None and 47 < c.crash_loop_back_off_at < 49


def test_back_off_resets_after_ten_minutes_of_running() -> None:
    liveness = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10}
    c = run(pod(env={"HEALTH_FAIL_AFTER": "650"}, liveness=liveness), duration=3000)
    assert len(c.restarts_at) >= 4
    assert c.crash_loop_back_off_at is None  # every run outlasts the entry's 600 s expiry


def test_backoff_follows_flowcontrol() -> None:
    backoff = _Backoff(Kubelet())
    assert not backoff.waiting(now=5, since=0)  # no entry: never waits
    backoff.next(now=5, since=0)
    assert backoff.window == 10 and backoff.waiting(now=9.9, since=0)
    assert not backoff.waiting(now=10.0, since=0)
    backoff.next(now=20, since=12)
    assert backoff.window == 20
    assert not backoff.waiting(now=621, since=620.5)  # 600 s after the last update
    backoff.next(now=700, since=699)
    assert backoff.window == 10


def test_startup_probe_holds_liveness_and_readiness_until_it_passes() -> None:
    probes: dict[str, Any] = {
        "startup": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 2,
                    "failureThreshold": 15},
        "liveness": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5},
        "readiness": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 5},
    }  # fmt: skip
    c = run(pod(env={"SLOW_START": "1", "STARTUP_SLEEP": "20"}, **probes), duration=60)
    assert c.restarts_at == []
    failures = [e for e in c.events if e.kind == "unhealthy"]
    assert failures and all(e.reason.startswith("startup") for e in failures)
    # Serving from 20.5; startup ticks at -0.5 + 2k pass at 21.5; its sync runs
    # readiness at once, which passes.
    assert c.ready_at == pytest.approx(21.5)


def test_sigterm_waits_for_the_boot_and_for_requests_in_flight() -> None:
    # uvicorn acts on SIGTERM only after its lifespan startup, and drains running requests.
    liveness = {"httpGet": {"port": 8000}, "periodSeconds": 2, "failureThreshold": 1}
    booting = run(pod(env={"SLOW_START": "1", "STARTUP_SLEEP": "10"}, liveness=liveness), 12)
    assert kinds(booting, "killing")[0] == pytest.approx(1.5)
    # Its startup is cancelled once it ends (0.05 s later it is gone), no graceful stop.
    assert booting.restarts_at[0] == pytest.approx(10.7 + 0.05 + 0.1)
    slow = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 4,
            "timeoutSeconds": 1, "failureThreshold": 1}  # fmt: skip
    draining = run(pod(env={"HEALTH_DELAY": "3"}, liveness=slow), 10)
    # The probe at 3.5 times out at 4.5, but its request runs until 6.5.
    assert kinds(draining, "killing")[0] == pytest.approx(4.5)
    assert draining.restarts_at[0] == pytest.approx(6.5 + 0.2 + 0.1)
    ignoring = run(pod(env={"HEALTH_DELAY": "3", "IGNORE_SIGTERM": "1"}, grace=2, liveness=slow))
    assert ignoring.restarts_at[0] == pytest.approx(4.5 + 2 + 0.1)


def test_startup_budget_too_short_kills_on_startup_failures() -> None:
    startup = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 3,
               "failureThreshold": 4}  # fmt: skip
    c = run(pod(env={"SLOW_START": "1", "STARTUP_SLEEP": "20"}, startup=startup), duration=40)
    killings = [e for e in c.events if e.kind == "killing"]
    assert [e.reason for e in killings] == ["startup"] * len(killings)
    assert killings[0].at == pytest.approx(11.5)  # ages 2.5, 5.5, 8.5, 11.5
    assert c.ready_at is None


def test_timeouts_count_as_failures_and_take_the_whole_timeout() -> None:
    liveness = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 4,
                "timeoutSeconds": 1, "failureThreshold": 3, "initialDelaySeconds": 2}  # fmt: skip
    c = run(pod(env={"HEALTH_DELAY": "3"}, liveness=liveness), duration=20)
    unhealthy = [e for e in c.events if e.kind == "unhealthy"]
    assert unhealthy[0].at == pytest.approx(3.5 + 1) and "timeout" in unhealthy[0].reason
    assert kinds(c, "killing")[0] == pytest.approx(11.5 + 1)
    quick = run(pod(env={"HEALTH_DELAY": "0.5"}, liveness=liveness), duration=20)
    assert quick.restarts_at == []  # answering within the timeout is a success


@pytest.mark.parametrize(
    ("probe_grace", "pod_grace", "stop"), [(5, 30, 5), (None, 7, 7), (0, 30, 2), (None, 1, 2)]
)
def test_a_process_ignoring_sigterm_exits_at_the_end_of_the_grace_period(
    probe_grace: int | None, pod_grace: int, stop: float
) -> None:
    liveness: dict[str, Any] = {"httpGet": {"port": 8000}, "periodSeconds": 3,
                                "failureThreshold": 2}  # fmt: skip
    if probe_grace is not None:
        liveness["terminationGracePeriodSeconds"] = probe_grace
    c = run(pod(env={"IGNORE_SIGTERM": "1"}, grace=pod_grace, liveness=liveness), duration=30)
    assert c.restarts_at[0] - kinds(c, "killing")[0] == pytest.approx(stop + 0.1)
    graceful = run(pod(grace=pod_grace, liveness=liveness), duration=30)
    assert graceful.restarts_at[0] - kinds(graceful, "killing")[0] == pytest.approx(0.3)


def test_versions_outside_the_read_ones_borrow_the_nearest_and_say_so() -> None:
    old = Kubelet.parse("1.24")
    assert old.version == (1, 33) and "outside the versions" in old.assumptions[0]
    assert Kubelet.parse("v1.36.1").assumptions == ()
    c = run(pod(liveness=WRONG_PORT), kubelet=Kubelet.parse("1.40"), duration=20)
    assert any("1.40" in note for note in c.assumptions)


def test_initial_delay_counts_from_the_start_second() -> None:
    # StartedAt keeps whole seconds: a start 0.6 s into its second looks 0.6 s older.
    probe = {"httpGet": {"port": 8000}, "periodSeconds": 1, "failureThreshold": 1,
             "initialDelaySeconds": 1}  # fmt: skip
    c = run(pod(liveness=probe), duration=3, node=replace(NODE, second=0.6))
    assert kinds(c, "unhealthy")[0] == pytest.approx(0.5)


def test_initial_delay_compares_whole_seconds() -> None:
    # With a 1 s delay the tick at age 0.5 is skipped, the one at 1.5 probes.
    probe = {"httpGet": {"port": 8000}, "periodSeconds": 1, "failureThreshold": 1,
             "initialDelaySeconds": 1}  # fmt: skip
    c = run(pod(liveness=probe), duration=3)
    assert kinds(c, "unhealthy")[0] == pytest.approx(1.5)


def test_never_restart_policy_leaves_the_container_dead() -> None:
    c = run(pod(restart="Never", liveness=WRONG_PORT), duration=60)
    assert c.restarts_at == [] and len(kinds(c, "killing")) == 1
    assert c.crash_loop_back_off_at is None


def test_readiness_failure_only_changes_readiness() -> None:
    readiness = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 3,
                 "failureThreshold": 2}  # fmt: skip
    c = run(pod(env={"HEALTH_FAIL_AFTER": "10"}, readiness=readiness), duration=30)
    assert c.restarts_at == [] and not kinds(c, "killing")
    # The start's sync probes at 0.5 (app not up yet), the readiness update's sync at 1.5,
    # then every 3 s from there: ready at 1.5; the app's clock starts at 0.65, so /healthz
    # fails from 10.65: at 13.5 and 16.5.
    assert c.ready_at == pytest.approx(1.5)
    assert kinds(c, "not-ready") == pytest.approx([16.5])


def test_success_threshold_needs_consecutive_successes() -> None:
    readiness = {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 2,
                 "successThreshold": 3}  # fmt: skip
    c = run(pod(readiness=readiness), duration=20)
    assert c.ready_at == pytest.approx(1.5 + 2 * 2)


def test_no_readiness_probe_means_ready_once_running_and_no_dip_on_quick_restarts() -> None:
    c = run(pod(liveness=WRONG_PORT), duration=35)
    assert c.ready_at == pytest.approx(0.5)
    assert kinds(c, "not-ready") == []


def test_a_restarted_instance_boots_warm() -> None:
    node = Node(sandbox=0.5, notice=0.5, app_boot=0.7, app_reboot=0.2)
    liveness = {"httpGet": {"port": 8000}, "periodSeconds": 2, "failureThreshold": 1}
    env = {"SLOW_START": "1", "STARTUP_SLEEP": "5"}
    c = run(pod(env=env, liveness=liveness), 20, node=node)
    first, second = c.restarts_at[:2]
    assert first == pytest.approx(5.7 + 0.05 + node.create)  # cold boot, killed booting
    assert second - first == pytest.approx(5.2 + 0.05 + node.create)  # warm boot


def test_a_process_that_exits_by_itself_restarts_at_once_then_backs_off() -> None:
    apps = app_for(exits_after=3.0)
    c = run(pod(liveness={"httpGet": {"path": "/healthz", "port": 8080}}), 40, apps=apps)
    assert c.restarts_at[0] == pytest.approx(3 + 0.5 + 0.1)
    assert c.crash_loop_back_off_at == pytest.approx(c.restarts_at[0] + 3 + 0.5)


def test_older_kubelets_retry_every_ten_seconds() -> None:
    new = run(pod(liveness=WRONG_PORT), duration=80)
    old = run(pod(liveness=WRONG_PORT), duration=80, kubelet=Kubelet.parse("v1.34.2"))
    # Window 20 s from exit 4: 1.35 comes back at its expiry, 1.34 after two 12.5 s retries.
    assert old.restarts_at[3] - new.restarts_at[3] == pytest.approx(
        (0.5 + 2 * (12.5 + 0.5)) - (0.5 + 19.5 * 1.25 + 0.5)
    )


def test_kubelet_settings_are_checked_against_the_version() -> None:
    assert Kubelet.parse("1.33", reduced_decay=True).backoff_max == 60
    assert Kubelet.parse("1.35", max_restart=5).backoff_initial == 5
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("1.19", {}, "predates startup probes"),
        ("one", {}, "must look like"),
        ("1.32", {"reduced_decay": True}, "1.33"),
        ("1.31", {"max_restart": 30}, "1.32"),
        ("1.35", {"max_restart": 301}, "between 1 and 300"),
    ]
    for version, kwargs, message in cases:
        with pytest.raises(ModelError, match=message):
            Kubelet.parse(version, **kwargs)


def test_probe_handlers() -> None:
    lab = App.lab({}, Latencies(NODE))
    container = {"ports": [{"containerPort": 8080, "name": "http"}]}

    def outcome(probe: dict[str, Any], age: float = 5) -> tuple[bool | None, str]:
        result = probe_outcome(probe, container, lab, age)
        return result.ok, result.why

    assert outcome({"httpGet": {"path": "/healthz", "port": "http"}}) == (
        True, "HTTP 200 from :8080/healthz")  # fmt: skip
    assert outcome({"httpGet": {"path": "/admin", "port": 8080}})[0] is False
    assert outcome({"httpGet": {"path": "/nope", "port": 8080}})[1].startswith("HTTP 404")
    assert outcome({"httpGet": {"port": "metrics"}}) == (None, "errored: no port named 'metrics'")
    assert outcome({"httpGet": {"path": "/healthz", "port": 8080}}, age=0.1)[0] is False
    assert outcome({"tcpSocket": {"port": 8080}}) == (True, "connected to :8080")
    assert outcome({"grpc": {"port": 8080}})[0] is False  # uvicorn speaks no gRPC
    curl = {"exec": {"command": ["curl", "-f", "http://localhost:8080/healthz"]}}
    assert outcome(curl) == (False, "curl: executable file not found")
    python = [
        "python3",
        "-c",
        "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/admin')",
    ]
    assert outcome({"exec": {"command": python}}) == (False, "HTTP 403 from :8080/admin")
    assert outcome({"exec": {"command": ["cat", "/tmp/ok"]}})[0] is True
    unknown = App(listens=None)
    assert probe_outcome({"httpGet": {"port": 1234}}, {}, unknown, 1).ok  # any port
    assert not probe_outcome({"httpGet": {"port": 1234}}, container, unknown, 1).ok


def test_dependency_on_the_pod_itself_is_known() -> None:
    def lab(url: str) -> App:
        env = [{"name": "READY_DEPENDENCY_URL", "value": url}]
        return App.lab({"env": env}, Latencies(NODE))

    assert lab("http://127.0.0.1:9/").ready_ok is False
    assert lab("http://localhost:8080/healthz").ready_ok
    db = lab("http://db:5432/")
    assert db.ready_ok and "assumed up" in db.assumptions[0]


def test_other_images_take_their_behaviour_from_options() -> None:
    probe = {"httpGet": {"path": "/live", "port": "http"}, "periodSeconds": 2}
    other = pod(image="example/api:1", liveness=probe)
    assert run(other, 20).restarts_at == []  # healthy unless told otherwise
    told = run(other, 20, apps=app_for(statuses={"/live": 500}))
    assert told.restarts_at


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_deployment_is_modelled_by_its_pod_template(tmp_path: Path) -> None:
    path = write(tmp_path, f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  template:
    spec:
      containers:
        - name: app
          image: {LAB}
          livenessProbe: {{httpGet: {{port: 8000}}, periodSeconds: 5, failureThreshold: 2}}
""")  # fmt: skip
    (timeline,) = predict(path, duration=30).pods
    assert timeline.name == "web" and timeline.containers[0].restarts_at


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: Service\nmetadata: {name: s}\n",
         "no Pod or pod template to model (found Service/s)"),
        ("kind: Pod\nmetadata: {name: p}\nspec: [", "invalid YAML"),
        ("kind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - {name: a, image: x}\n",
         "Pod/p has no liveness, readiness or startup probe"),
        ("kind: Pod\nmetadata: {name: p}\nspec: {}\n", "Pod/p has no containers"),
        ("- 1\n", "not a mapping"),
    ],
)  # fmt: skip
def test_bad_input_is_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ProbelabError, match=re.escape(message)) as error:
        read_pods(write(tmp_path, text))
    assert "\n" not in str(error.value)


def test_cli_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    manifest = ROOT / "manifests" / "fastapi-liveness-bad.yaml"
    assert main(["predict", str(manifest), "--duration", "45", "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    (container,) = result["pods"][0]["containers"]
    assert result["source"] == "predict" and result["duration"] == 45
    assert set(container) == {"name", "restarts", "restarts_at", "crash_loop_back_off_at",
                              "ready_at", "events", "notes", "assumptions"}  # fmt: skip
    assert container["restarts"] == len(container["restarts_at"]) == 3
    assert {e["kind"] for e in container["events"]} >= {"started", "unhealthy", "killing"}
    assert main(["predict", str(manifest), "--duration", "45"]) == 0
    assert "restarts (3)" in capsys.readouterr().out


def test_cli_bad_input_exits_non_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(ROOT / "manifests" / "fastapi-svc.yaml")]) == 2
    assert main(["predict", str(ROOT / "manifests" / "fastapi-liveness-bad.yaml"),
                 "--duration", "-1"]) == 2  # fmt: skip
    assert main(["predict", "/nonexistent.yaml"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("probelab: ") for line in errors)
