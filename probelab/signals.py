"""Signals: the ones a child process should get as from a terminal, and the ones that
must not cut a teardown short.

A process started from a background job (nohup, a CI runner) inherits SIGINT and SIGQUIT
ignored, and sometimes signals blocked; a child that should stop on Ctrl-C or SIGTERM, as
it would for a student at a terminal, needs them back first.

A teardown that a Ctrl-C started (deleting the lab's namespaces) often gets a second signal
that nobody typed: tox sends its child a SIGINT of its own a second after the terminal's
(tox.ini), and a SIGTERM later. The first extra one is only reported.
"""

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from probelab import progress
from probelab.i18n import _

INTERRUPTS = (signal.SIGINT, signal.SIGTERM)
# tox sends its own SIGINT 1 s after the terminal's (tox.ini's suicide_timeout), at times twice.
ECHO_SECONDS = 3.0


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
