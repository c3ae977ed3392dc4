"""The `probelab` command's exit codes and output, without a cluster."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from probelab.cli import main
from probelab.clusters.local.cluster import COMPONENTS


@pytest.fixture(autouse=True)
def _keep_logging_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    """`main` configures logging for the process; undo that after each test."""
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    probelab = logging.getLogger("probelab")
    monkeypatch.setattr(probelab, "filters", list(probelab.filters))


@pytest.mark.parametrize(
    "argv", [["bogus"], ["cluster"], ["cluster", "bogus"], ["cluster", "down", "--force"], []]
)
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """argparse's usage error: exit status 2 and a usage line, before anything runs."""
    with pytest.raises(SystemExit) as raised:
        main(argv)

    assert raised.value.code == 2
    assert "usage: probelab" in capsys.readouterr().err


def test_status_of_a_cluster_never_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With an empty state directory every component is stopped and the exit status is 1."""
    monkeypatch.setenv("PROBELAB_HOME", str(tmp_path))

    code = main(["cluster", "status"])

    out = capsys.readouterr().out
    assert code == 1
    assert f"state and logs: {tmp_path}" in out
    assert f"not up: 0/{len(COMPONENTS)} components running" in out
    for name in COMPONENTS:
        assert f"  {name} " in out
    assert out.count("stopped") == len(COMPONENTS)
    assert list(tmp_path.iterdir()) == [], "status only reads the state directory"
