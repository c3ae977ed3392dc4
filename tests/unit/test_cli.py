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


@pytest.mark.parametrize("action", ["up", "build"])
@pytest.mark.parametrize("version", ["1.29", "banana", "1.40"])
def test_a_bad_kubernetes_version_is_one_line_before_any_work(
    action: str,
    version: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Exit 2 and the supported range, with nothing built, downloaded or started."""
    monkeypatch.setenv("PROBELAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PROBELAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "no-go"))  # `go` would fail differently

    code = main(["cluster", action, "--kubernetes-version", version])

    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("probelab: ") and "supported: 1.33 to 1.36" in err
    assert list(tmp_path.iterdir()) == []


def test_a_bad_version_in_the_environment_is_refused_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PROBELAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PROBELAB_KUBERNETES_VERSION", "1.29")

    assert main(["cluster", "up"]) == 2
    assert "Kubernetes 1.29 is not supported" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
