"""Upstream's own probe specs pass on the local cluster (a fast subset; the whole focus is
benchmarks/upstream_probe_e2e.py), and a run that goes wrong says what went wrong and
leaves no namespace behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from kubernetes import client

from probelab import kube
from probelab.clusters.base import ClusterHandle
from probelab.conformance import summary
from probelab.conformance.local import run_on_local
from probelab.conformance.suite import (
    FRAMEWORK_LABEL,
    NAMESPACE_DELETE_TIMEOUT,
    STOP_GRACE_SECONDS,
    SuiteOutcome,
)
from probelab.signals import as_from_a_terminal

pytestmark = pytest.mark.cluster

# Three specs that restart their container within a minute (the ones asserting no restart
# watch for four): busybox and exec, agnhost and HTTP, and agnhost as a restartable init
# container.
FAST_SUBSET = (
    r'\[sig-node\] Probing container should be restarted with a exec "cat /tmp/health" '
    r"liveness probe",
    r"\[sig-node\] Probing container should be restarted with a /healthz http liveness probe",
    r"Probing restartable init container should be restarted with a /healthz http liveness probe",
)
# Each spec sees its first restart by about 30 s; three on two processes, plus the suite's
# setup, fit well inside this. A kubelet several times slower fails it.
FAST_TIMEOUT = 240.0
# A suite deadline shorter than any restarting spec's own wait.
SHORT_TIMEOUT = 45.0
# From `conformance run` with everything built to the suite's first namespace: ginkgo's
# start and the suite's setup take about 15 s here.
SUITE_START_TIMEOUT = 90.0


@pytest.fixture(scope="module")
def local(cluster: ClusterHandle) -> None:
    if cluster.provider != "local":
        pytest.skip(
            f"the suite's images are provided on the local cluster; this is {cluster.provider}"
        )


@pytest.fixture(scope="module")
def fast(local: None, tmp_path_factory: pytest.TempPathFactory) -> SuiteOutcome:
    return run_on_local(
        tmp_path_factory.mktemp("conformance"), focus=FAST_SUBSET, timeout=FAST_TIMEOUT
    )


def test_the_fast_subset_passes(fast: SuiteOutcome) -> None:
    assert [spec.state for spec in fast.specs] == ["passed"] * len(FAST_SUBSET), summary.render(
        fast
    )
    assert summary.succeeded(fast)


def test_upstreams_junit_records_each_spec_as_run_and_passed(fast: SuiteOutcome) -> None:
    cases = ET.parse(fast.junit).getroot().iter("testcase")
    ran = [case for case in cases if case.find("skipped") is None]
    names = sorted(str(case.get("name")) for case in ran if "Probing" in str(case.get("name")))
    assert len(names) == len(FAST_SUBSET), names
    assert not [case for case in ran if case.find("failure") is not None]


def test_our_own_watch_saw_each_spec_restart_its_container(fast: SuiteOutcome) -> None:
    for spec in fast.specs:
        namespaces = spec.namespaces(fast.made_namespaces)
        assert len(namespaces) == 1, f"{spec.name}: namespaces {namespaces}"
        pods = [pod for pod in fast.pods.values() if pod.namespace == namespaces[0]]
        assert pods, f"{spec.name}: no pod seen in {namespaces[0]}"
        assert max(pod.total_restarts for pod in pods) >= 1, f"{spec.name}: {pods}"


def test_no_namespace_of_the_run_is_left(fast: SuiteOutcome, kube_api: client.ApiClient) -> None:
    assert fast.made_namespaces
    existing = {
        ns.metadata.name
        for ns in client.CoreV1Api(kube_api).list_namespace(label_selector=FRAMEWORK_LABEL).items
        if ns.metadata
    }
    assert not existing & set(fast.made_namespaces)


def test_a_missing_image_and_a_timed_out_spec_are_named_and_cleaned_up(
    local: None, tmp_path: Path, kube_api: client.ApiClient
) -> None:
    # Upstream's own switch for image registries, pointed at a port nothing listens on.
    repo_list = tmp_path / "repo-list.yaml"
    repo_list.write_text("promoterE2eRegistry: 127.0.0.1:9/missing\n")
    outcome = run_on_local(
        tmp_path / "reports", focus=FAST_SUBSET[1:2], timeout=SHORT_TIMEOUT, repo_list=repo_list
    )
    text = summary.render(outcome)
    assert not summary.succeeded(outcome)
    assert [spec.state for spec in outcome.specs] in (["timedout"], ["interrupted"]), text
    assert "should be restarted with a /healthz http liveness probe" in text
    assert "127.0.0.1:9/missing/agnhost:" in text
    assert outcome.made_namespaces, text
    existing = {
        ns.metadata.name for ns in client.CoreV1Api(kube_api).list_namespace().items if ns.metadata
    }
    assert not existing & set(outcome.made_namespaces)


def test_ctrl_c_cleans_up_every_namespace_the_suite_made(
    local: None, tmp_path: Path, kube_api: client.ApiClient
) -> None:
    core = client.CoreV1Api(kube_api)
    before = {ns.metadata.name for ns in core.list_namespace().items if ns.metadata}
    run = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("probelab")),
            "conformance",
            "run",
            "--report-dir",
            str(tmp_path),
            "--focus",
            FAST_SUBSET[1],
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # Started from a background job (nohup, a CI runner), the run would inherit SIGINT
        # ignored and finish the suite instead of stopping: give it a terminal's signals.
        preexec_fn=as_from_a_terminal,
    )
    try:
        made = kube.watch_until(
            core.list_namespace,
            lambda ns: ns.metadata.name if ns.metadata.name not in before else None,
            timeout=SUITE_START_TIMEOUT,
            what="the suite's first namespace",
            label_selector=FRAMEWORK_LABEL,
        )
    finally:
        run.send_signal(signal.SIGINT)
        output, _ = run.communicate(timeout=STOP_GRACE_SECONDS + NAMESPACE_DELETE_TIMEOUT)
    assert run.returncode == 130, output.decode()
    left = {ns.metadata.name for ns in core.list_namespace().items if ns.metadata}
    assert made not in left, output.decode()
