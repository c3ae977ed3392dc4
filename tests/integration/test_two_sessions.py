"""Two lab sessions at once on one cluster, and every artefact they leave free of secrets.

Session A runs the image-pull step (the one that handles the registry password and the
pull secret) plus a test that fails with the whole `.dockerconfigjson` and its base64 in
its locals, under `pytest -l`, with JUnit, a report and DEBUG logs. Session B starts once
A's namespaces exist, so B's sweep of killed runs' namespaces sees A's, older than B, and
must leave them alone. Both must pass (A's one planted failure aside), neither may delete
the other's namespaces, and no form of the password may appear in anything either wrote,
nor in the cluster's component logs.
"""

import base64
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import pytest
from kubernetes import client

from probelab import kube
from probelab.clusters.base import ClusterHandle
from probelab.errors import WaitTimeout
from probelab.plugin import ROOT
from probelab.runs import live_namespaces

pytestmark = pytest.mark.cluster
LABS = ["labs/test_01_image_pull.py"]
# Only stops a hung process; the runs' own waits are bounded by probe settings.
RUN_LIMIT_SECONDS = 900
# How often the wait for session A's namespace looks whether A has exited already.
EXIT_CHECK_SECONDS = 5
LEAKY = """
import base64

import pytest

pytestmark = pytest.mark.scenario("leaky-locals", "fastapi-liveness-bad.yaml", pull_secret=False)


def test_fails_with_secrets_in_its_locals(lab):
    config = lab.registry.docker_config_json()
    stored = base64.b64encode(config.encode()).decode()
    password = lab.registry.credentials().password
    print("config", config, "stored", stored)
    assert password == stored
"""


@dataclass
class Run:
    name: str
    prefix: str
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def stdout(self) -> str:
        return (self.directory / "stdout.txt").read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return (self.directory / "stderr.txt").read_text(errors="replace")

    def finish(self) -> None:
        self.process.wait(timeout=RUN_LIMIT_SECONDS)

    def artefacts(self) -> str:
        """Everything the session wrote: its output, JUnit, report and logs (pictures aside)."""
        files = [p for p in self.directory.rglob("*") if p.is_file() and p.suffix != ".png"]
        return "".join(p.read_text(errors="replace") for p in files)


def _start(name: str, prefix: str, directory: Path, tests: list[str]) -> Run:
    """A pytest session in its own process; its output goes to files, so no pipe fills up."""
    command = [sys.executable, "-m", "pytest", *tests, "-l", "-rA", "-p", "no:cacheprovider"]
    command += ["--cluster=local", "--keep-cluster", "--log-level=DEBUG"]
    command += [f"--namespace-prefix={prefix}", f"--junitxml={directory / 'junit.xml'}"]
    command += [f"--report-dir={directory / 'report'}"]
    with (directory / "stdout.txt").open("wb") as out, (directory / "stderr.txt").open("wb") as err:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=err)
    return Run(name, prefix, directory, process)


def _wait_for_namespace(run: Run, api: client.ApiClient) -> None:
    """Until `run` has made a namespace; fails with its output as soon as it exits without one."""
    deadline = time.monotonic() + RUN_LIMIT_SECONDS
    while run.process.poll() is None:
        try:
            kube.watch_until(
                client.CoreV1Api(api).list_namespace,
                lambda ns: ns.metadata and str(ns.metadata.name).startswith(run.prefix + "-"),
                timeout=min(EXIT_CHECK_SECONDS, deadline - time.monotonic()),
                what=f"session {run.name}'s namespace ({run.prefix}-*)",
                label_selector=kube.RUN_LABEL,
            )
            return
        except WaitTimeout:
            if time.monotonic() >= deadline:
                raise
    pytest.fail(
        f"session {run.name} exited ({run.process.returncode}) before making a namespace:\n"
        + run.stdout[-3000:]
        + run.stderr[-2000:]
    )


@pytest.fixture(scope="module")
def runs(
    cluster: ClusterHandle, kube_api: client.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Run, Run]]:
    if cluster.provider != "local":
        pytest.skip("greps the local cluster's registry password and component logs")
    tag = uuid.uuid4().hex[:4]
    a_dir, b_dir = tmp_path_factory.mktemp("run-a"), tmp_path_factory.mktemp("run-b")
    leaky = a_dir / "test_leaky.py"
    leaky.write_text(LEAKY)
    a = _start("A", f"two-a{tag}", a_dir, [*LABS, str(leaky)])
    try:
        # B starts once A's namespace exists: B's sweep then sees a namespace older than B.
        _wait_for_namespace(a, kube_api)
        b = _start("B", f"two-b{tag}", b_dir, LABS)
        b.finish()
        a.finish()
    finally:
        if a.process.poll() is None:
            a.process.kill()
    yield a, b


def _junit(run: Run) -> dict[str, str]:
    """Each test case's name and outcome."""
    tree = ElementTree.parse(run.directory / "junit.xml")
    outcomes = {}
    for case in tree.iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        outcomes[case.get("name", "")] = "failed" if failed else "passed"
    return outcomes


def test_both_sessions_pass(runs: tuple[Run, Run]) -> None:
    a, b = runs
    assert b.process.returncode == 0, b.stdout[-3000:] + b.stderr[-2000:]
    outcomes = _junit(a)
    assert outcomes.pop("test_fails_with_secrets_in_its_locals") == "failed"
    assert outcomes and set(outcomes.values()) == {"passed"}, a.stdout[-3000:]
    assert set(_junit(b).values()) == {"passed"}


def test_neither_deletes_the_others_namespaces(
    runs: tuple[Run, Run], kube_api: client.ApiClient
) -> None:
    a, b = runs
    assert a.prefix not in b.stdout + b.stderr, "B's sweep named one of A's namespaces"
    for run in runs:
        left = live_namespaces(kube_api, run.prefix)
        assert not left, f"session {run.name} left {left}"


def test_no_form_of_the_password_in_any_artefact(runs: tuple[Run, Run]) -> None:
    from probelab.clusters.local.cluster import LocalCluster

    local = LocalCluster()
    registry = local.registry()
    creds = registry.credentials()
    config = registry.docker_config_json()
    forms = {
        "password": creds.password,
        "base64(password)": base64.b64encode(creds.password.encode()).decode(),
        "base64(user:password)": base64.b64encode(
            f"{creds.username}:{creds.password}".encode()
        ).decode(),
        "config JSON": config,
        "base64(config JSON)": base64.b64encode(config.encode()).decode(),
    }
    texts = {f"session {run.name}": run.artefacts() for run in runs}
    for log in sorted(local.layout.logs.glob("*.log")):
        texts[str(log)] = log.read_text(errors="replace")
    hits = [
        (where, form) for where, text in texts.items() for form, v in forms.items() if v in text
    ]
    assert hits == []
    # The control: the planted test's locals were there, and were masked.
    a_junit = (runs[0].directory / "junit.xml").read_text()
    assert re.search(r"stored\s*=\s*'\*\*\*'", a_junit), a_junit[-3000:]
