"""Loads the probelab plugin for labs/ and tests/ (when it is not installed as a package)
and pytest's own pytester, which the plugin's tests run pytest with."""

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from probelab import progress

pytest_plugins = ["probelab.plugin", "pytester"]
UNIT_TESTS = Path(__file__).parent / "tests" / "unit"


@pytest.fixture(autouse=True)
def _unit_tests_see_no_probelab_settings(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CI job that exports, say, PROBELAB_KIND_NODE_IMAGE=build for its kind session must
    not turn a unit test of kind's bring-up into a real Kubernetes build: unit tests that
    need a setting set it themselves. Integration tests and the labs keep the caller's."""
    if UNIT_TESTS in request.path.parents:
        for name in [name for name in os.environ if name.startswith("PROBELAB_")]:
            monkeypatch.delenv(name)


@pytest.fixture
def progress_lines() -> Iterator[io.StringIO]:
    """What probelab says, kept here instead of shown on this session's terminal."""
    lines = io.StringIO()
    previous = progress.use(progress.Display(lines, starts=True, terminal=False))
    yield lines
    progress.use(previous)


def started_pid(pid_file: Path) -> int:
    """The PID a test's command wrote into `pid_file`, once it has written it."""
    deadline = time.monotonic() + 10
    while not pid_file.is_file() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline, f"{pid_file} never written"
        time.sleep(0.05)
    return int(pid_file.read_text())


def assert_gone(pid: int) -> None:
    """That a stop really ended the process: gone, or a zombie its new parent has not
    reaped yet, within the moment a SIGKILL takes to be delivered."""
    deadline = time.monotonic() + 2
    while _running(pid):
        assert time.monotonic() < deadline, f"process {pid} still runs"
        time.sleep(0.05)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
