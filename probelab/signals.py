"""Signals: the ones a child process should get as from a terminal, and the ones that
must not cut a teardown short.

A process started from a background job (nohup, a CI runner) inherits SIGINT and SIGQUIT
ignored, and sometimes signals blocked; a child that should stop on Ctrl-C or SIGTERM, as
it would for a student at a terminal, needs them back first.

A teardown that a Ctrl-C started (deleting the lab's namespaces) often gets a second signal
that nobody typed: tox sends its child a SIGINT of its own right after the terminal's, and a
SIGTERM 0.3 s later unless tox.ini gives it longer. The first extra one is only reported.
"""

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from probelab import progress
from probelab.i18n import _

INTERRUPTS = (signal.SIGINT, signal.SIGTERM)


def as_from_a_terminal() -> None:
    """For `subprocess.Popen(preexec_fn=...)`: no signal blocked, the usual ones at default."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for number in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)


@contextmanager
def second_interrupt_needed(what: str) -> Iterator[None]:
    """While the block runs, a SIGINT or SIGTERM is reported; only the next one interrupts.

    Only in the main thread (where Python runs handlers); a signal ignored stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if seen:
            raise KeyboardInterrupt
        seen.append(signum)
        progress.say(_("probelab: still {what}; interrupt once more to stop now").format(what=what))

    previous = {
        number: signal.signal(number, handler)
        for number in INTERRUPTS
        if signal.getsignal(number) is not signal.SIG_IGN
    }
    try:
        yield
    finally:
        for number, before in previous.items():
            signal.signal(number, before)
