"""Loads the probelab plugin for labs/ and tests/ (when it is not installed as a package)
and pytest's own pytester, which the plugin's tests run pytest with."""

import io
import os
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
