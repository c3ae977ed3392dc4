"""The image tag follows the build context's content, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from probelab.images import content_tag


@pytest.fixture
def context(tmp_path: Path) -> Path:
    """A build context shaped like the lab's app."""
    root = tmp_path / "app"
    (root / "pkg").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM python:3.12-slim\nCOPY . /app\n")
    (root / "main.py").write_text("print('hello')\n")
    (root / "pkg" / "util.py").write_text("VALUE = 1\n")
    return root


def test_tag_shape(context: Path) -> None:
    """A valid Docker tag that says what it is."""
    assert re.fullmatch(r"sha-[0-9a-f]{12}", content_tag(context))


def test_same_content_same_tag(context: Path, tmp_path: Path) -> None:
    """Identical sources anywhere on disk give the same tag, so a second run pushes nothing."""
    copy = tmp_path / "elsewhere" / "app"
    for path in context.rglob("*"):
        target = copy / path.relative_to(context)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())

    assert content_tag(context) == content_tag(context)
    assert content_tag(copy) == content_tag(context)


def test_changed_file_changes_the_tag(context: Path) -> None:
    before = content_tag(context)
    (context / "pkg" / "util.py").write_text("VALUE = 2\n")

    assert content_tag(context) != before


def test_added_file_changes_the_tag(context: Path) -> None:
    before = content_tag(context)
    (context / "requirements.txt").write_text("")

    assert content_tag(context) != before


def test_renamed_file_changes_the_tag(context: Path) -> None:
    """COPY puts files at their paths, so a rename is a different image."""
    before = content_tag(context)
    (context / "main.py").rename(context / "app.py")

    assert content_tag(context) != before


def test_moved_file_changes_the_tag(context: Path) -> None:
    before = content_tag(context)
    (context / "pkg" / "util.py").rename(context / "util.py")

    assert content_tag(context) != before


def test_content_moving_between_files_changes_the_tag(context: Path) -> None:
    """Swapping two files' contents keeps the set of bytes but not the image."""
    before = content_tag(context)
    main, util = context / "main.py", context / "pkg" / "util.py"
    main_text, util_text = main.read_text(), util.read_text()
    main.write_text(util_text)
    util.write_text(main_text)

    assert content_tag(context) != before


@pytest.mark.parametrize("ignored", ["__pycache__", ".pytest_cache", ".venv"])
def test_local_caches_do_not_change_the_tag(context: Path, ignored: str) -> None:
    """Running the app or its tests locally must not force a rebuild."""
    before = content_tag(context)
    for parent in (context, context / "pkg"):
        (parent / ignored).mkdir()
        (parent / ignored / "main.cpython-311.pyc").write_bytes(b"\x00compiled")

    assert content_tag(context) == before


def test_files_cannot_impersonate_each_other(tmp_path: Path) -> None:
    """Two different contexts must never share a tag, even with binary files in them."""
    one = tmp_path / "one"
    one.mkdir()
    (one / "a").write_bytes(b"x\0b\0y")
    two = tmp_path / "two"
    two.mkdir()
    (two / "a").write_bytes(b"x")
    (two / "b").write_bytes(b"y")

    assert content_tag(one) != content_tag(two)
