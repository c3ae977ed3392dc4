"""Signals: the ones a child process should get as from a terminal, and the ones that
must not cut a teardown short.

A process started from a background job (nohup, a CI runner) inherits SIGINT and SIGQUIT
ignored, and sometimes signals blocked; a child that should stop on Ctrl-C or SIGTERM, as
it would for a student at a terminal, needs them back first.

A teardown that a Ctrl-C started (deleting the lab's namespaces) often gets a second signal
that nobody typed: tox sends its child a SIGINT of its own a second after the terminal's
(tox.ini), and a SIGTERM later. The first extra one is only reported.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Any

from probelab import progress
from probelab.i18n import _

INTERRUPTS = (signal.SIGINT, signal.SIGTERM)
# tox sends its own SIGINT 1 s after the terminal's (tox.ini's suicide_timeout), at times twice.
ECHO_SECONDS = 3.0
CHILD_TEARDOWN_SECONDS = 300.0
"""How long an interrupted child (a lab session, a cluster's up) may take to clean up before
it is killed: the lab's teardown deletes its namespaces within a minute or two."""


def as_from_a_terminal() -> None:
    """For `subprocess.Popen(preexec_fn=...)`: no signal blocked, the usual ones at default."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for number in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)


class InterruptLadder:
    """SIGINT and SIGTERM as Ctrl-C, for a session whose teardown must finish.

    The first one raises KeyboardInterrupt (pytest then tears down), as does any once the
    teardown is over. While stopping, signals within ECHO_SECONDS of the one that started
    it are echoes, not typed by anyone (tox repeats the terminal's Ctrl-C to its child, once
    or twice, a second later): the first is reported, none obeyed. After that window the
    next one stops at once. A teardown begun without a signal (the session's normal end)
    reports the first signal and opens the window then.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.since: float | None = None  # when stopping began (None: not stopping)
        self.reported = False

    def install(self) -> None:
        """Take SIGINT and SIGTERM where they have their default handling, main thread only
        (where Python runs handlers); one ignored (a background job's SIGINT) stays so."""
        if threading.current_thread() is not threading.main_thread():
            return
        self.since, self.reported = None, False
        defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
        for number in INTERRUPTS:
            if signal.getsignal(number) in (defaults[number], self):
                signal.signal(number, self)

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        now = self.clock()
        if self.since is None:  # not stopping yet: stop
            self.since = now
            raise KeyboardInterrupt
        if now - self.since < ECHO_SECONDS:  # an echo of the signal that started it
            self._report_once()
            return
        if not self.reported:  # the first during a teardown begun without a signal
            self.since = now  # its echoes are ignored too
            self._report_once()
            return
        raise KeyboardInterrupt

    def _report_once(self) -> None:
        if not self.reported:
            self.reported = True
            progress.say(_("probelab: still tearing down; interrupt once more to stop now"))

    @contextmanager
    def tearing_down(self) -> Iterator[None]:
        """The block is a teardown: a signal during it is reported first, not obeyed."""
        if self.since is None:
            self.since = self.clock() - ECHO_SECONDS  # no echo window: nothing was sent
        try:
            yield
        finally:
            self.since, self.reported = None, False


@contextmanager
def child(argv: Sequence[str], **popen: Any) -> Iterator["subprocess.Popen[Any]"]:
    """A command that tears down as it would on a terminal's Ctrl-C when this process is.

    The child gets a process group of its own, so an interrupt here (Ctrl-C, or a SIGTERM
    made one by `InterruptLadder`) reaches it once, as SIGINT to its whole group, from here;
    the child is then waited for (its output, if piped, read and dropped meanwhile) up to
    `CHILD_TEARDOWN_SECONDS` or until the next interrupt, and only then killed, group and
    all. (`subprocess.run` kills a child at once on an interrupt: a lab session would leave
    its namespaces, `up` a half-started cluster.) The block ends when the child has exited.
    """
    process = subprocess.Popen(argv, start_new_session=True, preexec_fn=as_from_a_terminal, **popen)
    try:
        yield process
        process.communicate()
    except BaseException:  # an interrupt, or the caller's own failure: the child goes too
        _stop_group(process)
        raise


def _stop_group(process: "subprocess.Popen[Any]") -> None:
    with suppress(ProcessLookupError):  # it may be gone already
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.communicate(timeout=CHILD_TEARDOWN_SECONDS)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):  # too slow, or "stop now"
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


def run_child(argv: Sequence[str], **popen: Any) -> int:
    """`argv` run to its end under `child`; its exit code."""
    with child(argv, **popen) as process:
        pass
    return process.returncode


def interruptible(main: Callable[[], int], name: str) -> int:
    """Run a script's `main` with SIGTERM as Ctrl-C: the `finally` blocks and the children's
    teardowns run either way, and an interrupted run exits 130 saying so."""
    InterruptLadder().install()
    try:
        return main()
    except KeyboardInterrupt:
        print(f"{name}: interrupted; what it started has been stopped and cleaned up, and "
              "no result is kept", file=sys.stderr)  # fmt: skip
        return 130
