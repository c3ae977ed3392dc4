"""Signals for a child process as a shell in a terminal hands them on.

A process started from a background job (nohup, a CI runner) inherits SIGINT and SIGQUIT
ignored, and sometimes signals blocked; a child that should stop on Ctrl-C or SIGTERM, as
it would for a student at a terminal, needs them back first.
"""

import signal


def as_from_a_terminal() -> None:
    """For `subprocess.Popen(preexec_fn=...)`: no signal blocked, the usual ones at default."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for number in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)
