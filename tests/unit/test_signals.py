"""A teardown started by an interrupt is not cut short by the signals that echo it."""

import io
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from probelab import signals
from probelab.signals import ECHO_SECONDS, INTERRUPTS, InterruptLadder, as_from_a_terminal

REPORTED = "probelab: still tearing down; interrupt once more to stop now\n"


@pytest.fixture
def as_in_a_terminal() -> Iterator[None]:
    """SIGINT and SIGTERM unblocked and handled as in a terminal's pytest: run from a
    background job (nohup, CI), the test process may have them ignored or blocked."""
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, INTERRUPTS)
    before = {
        signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
        signal.SIGTERM: signal.signal(signal.SIGTERM, signal.SIG_DFL),
    }
    yield
    for number, handler in before.items():
        signal.signal(number, handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _send(number: int = signal.SIGINT) -> None:
    os.kill(os.getpid(), number)


@pytest.mark.parametrize("first", [signal.SIGINT, signal.SIGTERM])
def test_echoes_of_an_interrupt_are_reported_once_and_a_later_one_stops(
    first: signal.Signals, progress_lines: io.StringIO, as_in_a_terminal: None
) -> None:
    clock = Clock()
    ladder = InterruptLadder(clock)
    ladder.install()
    with pytest.raises(KeyboardInterrupt):
        _send(first)
    clock.now += 1.0  # tox's own SIGINTs, twice, a second later
    _send()
    _send()
    assert progress_lines.getvalue() == REPORTED
    clock.now += ECHO_SECONDS
    with pytest.raises(KeyboardInterrupt):
        _send()


def test_a_teardown_without_a_signal_reports_the_first_and_obeys_a_later_one(
    progress_lines: io.StringIO, as_in_a_terminal: None
) -> None:
    clock = Clock()
    ladder = InterruptLadder(clock)
    ladder.install()
    with pytest.raises(KeyboardInterrupt), ladder.tearing_down():
        _send(signal.SIGTERM)
        assert progress_lines.getvalue() == REPORTED
        clock.now += 1.0
        _send()  # its echo
        clock.now += ECHO_SECONDS
        _send()
    with pytest.raises(KeyboardInterrupt):  # after a teardown, an interrupt is obeyed
        _send()


def test_an_ignored_signal_stays_ignored(
    progress_lines: io.StringIO, as_in_a_terminal: None
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    InterruptLadder().install()
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    _send()
    assert progress_lines.getvalue() == ""


CHILD = """
import pathlib, signal, sys
def stop(*_):
    pathlib.Path(sys.argv[1]).write_text("cleaned up")
    sys.exit(0)
signal.signal(signal.SIGINT, stop)
print("ready", flush=True)
while True:
    signal.pause()
"""


def test_a_sigterm_lets_the_child_clean_up_and_exits_130(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    parent = (
        "import sys; from probelab.signals import interruptible, run_child; "
        f"sys.exit(interruptible(lambda: run_child([sys.executable, '-c', {CHILD!r}, "
        f"{str(marker)!r}]), 'demo'))"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", parent],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_from_a_terminal,
    )
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert marker.read_text() == "cleaned up"  # SIGINT reached the child, which finished
    assert "demo: interrupted" in err


def test_a_child_that_will_not_stop_is_killed_after_its_teardown_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(signals, "CHILD_TEARDOWN_SECONDS", 0.5)
    ignoring = (
        "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "print('ready', flush=True); signal.pause()"
    )
    command = [sys.executable, "-c", ignoring]
    with (
        pytest.raises(KeyboardInterrupt),
        signals.child(command, stdout=subprocess.PIPE, text=True) as process,
    ):
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
        raise KeyboardInterrupt
    assert process.returncode == -signal.SIGKILL
