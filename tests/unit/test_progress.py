"""Progress lines show while pytest runs, with capture on: a start and an end line per step,
only end lines with `-q`, a live spinner in a terminal, secrets masked.

Each case runs a real pytest session (pytester, in a subprocess) with the installed plugin,
so what is checked is what a student sees on the first run.
"""

import io
import os
import pty
import re
import select
import subprocess
import sys
import threading
import time

import pytest

from probelab import progress

STEPS = """
import time

import pytest

from probelab.progress import say, step
from probelab.secrets import SECRETS


@pytest.fixture(scope="session")
def slow():
    SECRETS.register("hunter2hunter2")
    say("cluster: local")
    with step("building hunter2hunter2"):
        time.sleep(1.0)  # the long step being shown, not a wait for anything
    yield
    with step("deleting namespaces"):
        pass


def test_a(slow):
    print("noise from a test")


def test_b(slow):
    with step("pushing the image"):
        raise RuntimeError("refused")
"""

# Cursor moves and colours the spinner writes in a terminal.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def lines_of(result: pytest.RunResult) -> list[str]:
    return [line.rstrip() for line in result.outlines]


def test_start_and_end_lines_show_with_capture_on(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_steps=STEPS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    lines = lines_of(result)

    assert result.ret == 1
    # In order, each on its own line, before the test results are summarised.
    expected = ["cluster: local", "... building ***", "... pushing the image"]
    positions = [lines.index(line) for line in expected]
    assert positions == sorted(positions)
    assert any(line.startswith("ok  building *** (1.") for line in lines), lines
    assert "failed pushing the image (0.0s)" in lines
    assert "... deleting namespaces" in lines
    assert "noise from a test" not in lines  # the test's own output stays captured
    assert "hunter2hunter2" not in result.stdout.str() + result.stderr.str()


def test_quiet_keeps_only_the_end_lines(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_steps=STEPS)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    lines = lines_of(result)

    assert not [line for line in lines if line.startswith("... ")]
    assert any(line.startswith("ok  building *** (") for line in lines)
    assert any(line.startswith("ok  deleting namespaces (") for line in lines)
    assert "failed pushing the image (0.0s)" in lines


def test_a_terminal_gets_a_live_spinner(pytester: pytest.Pytester) -> None:
    """On a pseudo-terminal the spinner's frames advance while the step runs."""
    path = pytester.makepyfile(test_steps=STEPS)
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(path)],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        cwd=pytester.path,
        env={**os.environ, "TERM": "xterm", "COLUMNS": "120"},
    )
    os.close(terminal)
    output = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], deadline - time.monotonic())
        try:
            chunk = os.read(controller, 65536) if ready else b""
        except OSError:  # the other end closed: pytest exited
            break
        if not chunk:
            break
        output += chunk
    process.wait(timeout=10)
    os.close(controller)
    text = output.decode(errors="replace")

    assert process.returncode == 1
    frames = {frame for frame in "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏" if f"{frame} building *** (" in text}
    assert len(frames) >= 3, text  # it moved: at 8 frames a second over a one-second step
    assert "ok  building *** (1." in text


@pytest.mark.parametrize("terminal", [False, True])
def test_steps_in_two_threads_keep_their_lines_whole(terminal: bool) -> None:
    """The side builds run their steps beside the Kubernetes build's: each start and end
    line stays one whole line, with the spinner up too."""
    out = io.StringIO()
    display = progress.Display(out, starts=True, terminal=terminal)
    previous = progress.use(display)

    def steps(name: str) -> None:
        for number in range(30):
            with progress.step(f"building {name} {number}"):
                progress.say(f"{name} says {number}")
                time.sleep(0.01)  # long enough for the other thread and the spinner to run

    try:
        threads = [threading.Thread(target=steps, args=(name,)) for name in ("etcd", "kube")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        progress.use(previous)
    text = _ANSI.sub("", out.getvalue()).replace("\r", "\n")
    assert ("(0s)" in text) == terminal  # the spinner's own lines: up in a terminal only
    lines = {line.strip() for line in text.splitlines()}
    for name in ("etcd", "kube"):
        for number in range(30):
            assert f"... building {name} {number}" in lines
            assert f"{name} says {number}" in lines
            assert any(line.startswith(f"ok  building {name} {number} (") for line in lines)
