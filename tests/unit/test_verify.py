"""The rubric on hand-made snapshots, and the `verify` command's inputs and outputs.

A snapshot is what `read_namespace` returns: the objects as `kubectl get -o json` shows
them. `handed_in()` is a student's namespace after the seed's lab; each test breaks one
thing and checks that exactly its check fails, with evidence and the hint.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import yaml

from probelab.cli import main
from probelab.commands.verify import as_json, as_junit, as_text, parse_contexts_file
from probelab.errors import ProbelabError
from probelab.verify import RUBRIC, Grade, Result, Snapshot, Student, grade, shown

NS = "demo"
BAD_UID, GOOD_UID, SLOW_UID = "uid-bad", "uid-good", "uid-slow"
LIVENESS_KILL = "Container app failed liveness probe, will be restarted"


def pod(name: str, uid: str, *, ready: bool, restarts: int = 0, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": uid, "labels": {"app": name}},
        "spec": {"containers": [{"name": "app", **spec}]},
        "status": {
            "phase": "Running",
            "podIP": f"10.244.0.{len(name)}",
            "conditions": [{"type": "Ready", "status": str(ready)}],
            "containerStatuses": [{"name": "app", "restartCount": restarts, "state": {}}],
        },
    }


def event(pod_name: str, uid: str, reason: str, message: str, count: int = 1) -> dict[str, Any]:
    return {
        "involvedObject": {"kind": "Pod", "name": pod_name, "uid": uid},
        "reason": reason,
        "message": message,
        "count": count,
    }


def handed_in() -> Snapshot:
    bad = pod("fastapi-bad", BAD_UID, ready=False, restarts=4)
    bad["status"]["containerStatuses"][0]["state"] = {
        "waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting"}
    }
    http: dict[str, Any] = {"path": "/healthz", "port": 8080}
    startup = {"httpGet": http, "periodSeconds": 2, "failureThreshold": 20}
    return Snapshot(
        namespace=NS,
        pods={
            "fastapi-bad": bad,
            "fastapi-good": pod("fastapi-good", GOOD_UID, ready=True),
            "fastapi-slow": pod("fastapi-slow", SLOW_UID, ready=True, startupProbe=startup),
        },
        events=(
            event(
                "fastapi-bad", BAD_UID, "Unhealthy", "Liveness probe failed: connection refused", 8
            ),
            event("fastapi-bad", BAD_UID, "Killing", LIVENESS_KILL, 4),
            event("fastapi-bad", BAD_UID, "BackOff", "Back-off restarting failed container app", 3),
        ),
        service_account={
            "metadata": {"name": "default"},
            "imagePullSecrets": [{"name": "ecr-regcred"}],
        },
        pull_secret={
            "metadata": {"name": "ecr-regcred"},
            "type": "kubernetes.io/dockerconfigjson",
            "dataKeys": [".dockerconfigjson"],
        },
        service={
            "metadata": {"name": "fastapi-svc"},
            "spec": {"selector": {"app": "fastapi-good"}},
        },
        endpoint_slices=(
            {
                "metadata": {"name": "fastapi-svc-abcde"},
                "endpoints": [
                    {
                        "addresses": ["10.244.0.12"],
                        "conditions": {"ready": True},
                        "targetRef": {"kind": "Pod", "name": "fastapi-good"},
                    }
                ],
            },
        ),
    )


def results(snapshot: Snapshot) -> dict[str, Result]:
    return {r.id: r for r in grade(snapshot)}


def failing(snapshot: Snapshot) -> set[str]:
    return {r.id for r in grade(snapshot) if not r.passed}


def test_the_handed_in_lab_gets_full_marks() -> None:
    graded = results(handed_in())
    assert all(r.passed and r.hint is None for r in graded.values())
    assert sum(r.points for r in graded.values()) == 100
    assert "4x Killing: " + LIVENESS_KILL in graded["bad-restarted-by-liveness"].evidence
    assert "restartCount 4" in graded["bad-restarted-by-liveness"].evidence
    assert "http-get :8080/healthz" in graded["slow-has-startup-probe"].evidence
    assert "about 40s to start" in graded["slow-has-startup-probe"].evidence
    assert "10.244.0.12 (fastapi-good, ready)" in graded["service-endpoint"].evidence


def _with_pod(name: str, change: Callable[[dict[str, Any]], None]) -> Snapshot:
    snapshot = handed_in()
    pods = {name: copy.deepcopy(dict(p)) for name, p in snapshot.pods.items()}
    change(pods[name])
    return replace(snapshot, pods=pods)


def _without_pod(name: str) -> Snapshot:
    snapshot = handed_in()
    return replace(snapshot, pods={k: v for k, v in snapshot.pods.items() if k != name})


def _not_ready(p: dict[str, Any]) -> None:
    p["status"]["conditions"] = [{"type": "Ready", "status": "False"}]


def _restarted(p: dict[str, Any]) -> None:
    p["status"]["containerStatuses"][0]["restartCount"] = 2
    p["status"]["containerStatuses"][0]["lastState"] = {
        "terminated": {"reason": "Error", "exitCode": 137}
    }


BROKEN: dict[str, tuple[Callable[[], Snapshot], set[str], str]] = {
    "good pod missing": (
        lambda: _without_pod("fastapi-good"),
        {"good-ready"},
        "no pod fastapi-good in namespace demo",
    ),
    "good pod not ready": (
        lambda: _with_pod("fastapi-good", _not_ready),
        {"good-ready"},
        "Ready=False",
    ),
    "good pod restarted": (
        lambda: _with_pod("fastapi-good", _restarted),
        {"good-ready"},
        "app last ended: Error (exit 137)",
    ),
    "startupProbe removed": (
        lambda: _with_pod("fastapi-slow", lambda p: p["spec"]["containers"][0].pop("startupProbe")),
        {"slow-has-startup-probe"},
        "container app has no startupProbe",
    ),
    "slow pod restarted": (
        lambda: _with_pod("fastapi-slow", _restarted),
        {"slow-ready"},
        "restartCount 2",
    ),
    "no pull secret on the ServiceAccount": (
        lambda: replace(handed_in(), service_account={"metadata": {"name": "default"}}),
        {"service-account-pull-secret"},
        "imagePullSecrets: none",
    ),
    "ServiceAccount missing": (
        lambda: replace(handed_in(), service_account=None),
        {"service-account-pull-secret"},
        "no ServiceAccount default in demo",
    ),
    "secret deleted": (
        lambda: replace(handed_in(), pull_secret=None),
        {"pull-secret-type"},
        "no secret ecr-regcred in demo",
    ),
    "secret of the wrong type": (
        lambda: replace(
            handed_in(),
            pull_secret={"type": "Opaque", "dataKeys": [".dockerconfigjson"]},
        ),
        {"pull-secret-type"},
        "type Opaque",
    ),
    "Service deleted": (
        lambda: replace(handed_in(), service=None, endpoint_slices=()),
        {"service-endpoint"},
        "no Service fastapi-svc in demo",
    ),
    "good pod not an endpoint": (
        lambda: replace(handed_in(), endpoint_slices=()),
        {"service-endpoint"},
        "endpoints: none",
    ),
    "bad pod deleted": (
        lambda: _without_pod("fastapi-bad"),
        {"bad-restarted-by-liveness", "bad-crash-loop-back-off"},
        "no pod fastapi-bad in namespace demo",
    ),
}


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_item_fails_its_check_with_evidence_and_hint(case: str) -> None:
    make, expected, evidence = BROKEN[case]
    snapshot = make()
    assert failing(snapshot) == expected
    graded = results(snapshot)
    hints = {check.id: shown(check.hint, NS) for check in RUBRIC}
    for check in expected:
        assert graded[check].points == 0
        assert graded[check].hint == hints[check]
        assert "$namespace" not in hints[check]
    assert any(evidence in graded[check].evidence for check in expected), {
        c: graded[c].evidence for c in expected
    }


def test_events_of_an_earlier_pod_with_the_same_name_do_not_count() -> None:
    """A student who deleted the bad pod and applied a fixed one under the same name."""

    def recreated(p: dict[str, Any]) -> None:
        p["metadata"]["uid"] = "uid-new"
        p["status"]["containerStatuses"][0].update(restartCount=0, state={})

    assert failing(_with_pod("fastapi-bad", recreated)) == {
        "bad-restarted-by-liveness",
        "bad-crash-loop-back-off",
    }


def test_crash_loop_shown_by_back_off_events_while_the_container_runs() -> None:
    """Between restarts the pod shows Running; the BackOff event still proves the loop."""
    snapshot = _with_pod(
        "fastapi-bad", lambda p: p["status"]["containerStatuses"][0].update(state={"running": {}})
    )
    graded = results(snapshot)["bad-crash-loop-back-off"]
    assert graded.passed
    assert "not in CrashLoopBackOff right now; 3x BackOff" in graded.evidence


def test_a_kill_for_another_reason_is_not_a_liveness_restart() -> None:
    snapshot = replace(
        handed_in(),
        events=(event("fastapi-bad", BAD_UID, "Killing", "Stopping container app"),),
    )
    graded = results(snapshot)["bad-restarted-by-liveness"]
    assert not graded.passed
    assert "no Killing event for a failed liveness probe" in graded.evidence


def test_what_could_not_be_read_fails_its_checks_with_an_access_hint() -> None:
    snapshot = replace(handed_in(), pull_secret=None, unreadable={"secrets": "403 Forbidden"})
    graded = results(snapshot)
    assert failing(snapshot) == {"pull-secret-type"}
    assert graded["pull-secret-type"].evidence == "could not read secrets (403 Forbidden)"
    assert "view excludes secrets" in (graded["pull-secret-type"].hint or "")
    assert "in demo" in (graded["pull-secret-type"].hint or "")


# --- the command -------------------------------------------------------------------------


def test_contexts_file(tmp_path: Path) -> None:
    path = tmp_path / "class.txt"
    path.write_text("# spring class\nalice\n\nbob  lab-ns   # own namespace\n")
    assert parse_contexts_file(path, "demo") == [Student("alice", "demo"), Student("bob", "lab-ns")]


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "names no context"), ("alice demo extra\n", re.escape(":1: expected `CONTEXT [NAME"))],
)
def test_bad_contexts_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "class.txt"
    path.write_text(content)
    with pytest.raises(ProbelabError, match=message):
        parse_contexts_file(path, "demo")


def _kubeconfig(tmp_path: Path, contexts: dict[str, str]) -> Path:
    """Contexts pointing at servers; port 1 on loopback refuses at once."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": n, "cluster": {"server": s}} for n, s in contexts.items()],
                "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
                "contexts": [{"name": n, "context": {"cluster": n, "user": "u"}} for n in contexts],
                "current-context": next(iter(contexts)),
            }
        )
    )
    return path


def test_unknown_context_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _kubeconfig(tmp_path, {"alice": "http://127.0.0.1:1"})
    code = main(["verify", "--kubeconfig", str(config), "--contexts", "alice,bob"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("probelab: cannot load context 'bob'") and err.count("\n") == 1


def test_pass_mark_out_of_range_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--kube-context", "x", "--pass-mark", "101"]) == 2
    assert "--pass-mark must be between 0 and 100" in capsys.readouterr().err


def test_an_unreachable_cluster_is_graded_as_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _kubeconfig(tmp_path, {"alice": "http://127.0.0.1:1", "bob": "http://127.0.0.1:1"})
    code = main(["verify", "--kubeconfig", str(config), "--contexts", "alice,bob"])
    assert code == 1
    out = capsys.readouterr().out
    assert "alice / demo: 0/100 ERROR" in out
    assert "0/2 students reached the pass mark of 70" in out


def _class() -> list[Grade]:
    full = grade(handed_in())
    broken = grade(replace(handed_in(), namespace="lab", pull_secret=None, service=None))
    return [
        Grade(Student("alice"), full),
        Grade(Student("bob", "lab"), broken),
        Grade(Student("carol"), error="the cluster at https://10.0.0.9 is unreachable"),
    ]


def test_text_lists_each_check_and_a_summary() -> None:
    text = as_text(_class(), 70)
    assert "alice / demo: 100/100 PASS (pass mark 70)" in text
    assert "bob / lab: 75/100 PASS" in text
    assert "[FAIL]  0/10 pull-secret-type" in text
    assert "hint: create it with `kubectl -n lab create secret docker-registry" in text
    assert "carol / demo: 0/100 ERROR" in text
    summary = text.split("CONTEXT")[1]
    assert summary.splitlines()[1].split() == ["alice", "demo", "100/100", "PASS"]
    assert "2/3 students reached the pass mark of 70" in text


def test_json_holds_every_check() -> None:
    document = json.loads(as_json(_class(), 80))
    alice, bob, carol = document["students"]
    assert (alice["score"], alice["passed"]) == (100, True)
    assert (bob["score"], bob["passed"]) == (75, False)
    assert carol["error"] and carol["checks"] == []
    assert len(alice["checks"]) == len(RUBRIC)
    assert {c["id"] for c in bob["checks"] if not c["passed"]} == {
        "pull-secret-type",
        "service-endpoint",
    }


def test_junit_has_a_suite_per_student_and_a_case_per_check() -> None:
    root = ElementTree.fromstring(as_junit(_class(), 70))
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["alice/demo", "bob/lab", "carol/demo"]
    assert [(s.get("tests"), s.get("failures"), s.get("errors")) for s in suites] == [
        ("8", "0", "0"),
        ("8", "2", "0"),
        ("1", "0", "1"),
    ]
    failure = suites[1].find("testcase[@name='service-endpoint']/failure")
    assert failure is not None and failure.text == "no Service fastapi-svc in lab"
    assert "apply fastapi-svc.yaml" in (failure.get("message") or "")
