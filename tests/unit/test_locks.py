"""File locks: an exclusive holder keeps everyone out, shared holders only keep out an
exclusive one (checked against util-linux's flock(1), another process)."""

import subprocess
from pathlib import Path

import pytest

from probelab.locks import exclusive


def _others_get(path: Path, mode: str) -> bool:
    """Whether another process gets the lock in `mode` ("-s" or "-x") without waiting."""
    return subprocess.run(["flock", "-n", mode, str(path), "true"]).returncode == 0


@pytest.mark.parametrize(("shared", "others_shared", "others_exclusive"), [
    (False, False, False),
    (True, True, False),
])  # fmt: skip
def test_a_held_lock_lets_in_only_what_its_mode_allows(
    tmp_path: Path, shared: bool, others_shared: bool, others_exclusive: bool
) -> None:
    path = tmp_path / "locks" / "cluster.lock"
    with exclusive(path, shared=shared):
        assert _others_get(path, "-s") is others_shared
        assert _others_get(path, "-x") is others_exclusive
    assert _others_get(path, "-x")  # let go at the block's end
