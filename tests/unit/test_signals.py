"""A teardown started by an interrupt is not cut short by the next signal on its own."""

import io
import os
import signal
from collections.abc import Iterator

import pytest

from probelab.signals import INTERRUPTS, second_interrupt_needed


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


@pytest.mark.parametrize("first", [signal.SIGINT, signal.SIGTERM])
def test_the_first_signal_is_reported_and_the_next_interrupts(
    first: signal.Signals, progress_lines: io.StringIO, as_in_a_terminal: None
) -> None:
    before = signal.getsignal(signal.SIGTERM)
    reached_the_end = False
    with pytest.raises(KeyboardInterrupt), second_interrupt_needed("deleting the namespaces"):
        os.kill(os.getpid(), first)
        assert progress_lines.getvalue() == (
            "probelab: still deleting the namespaces; interrupt once more to stop now\n"
        )
        os.kill(os.getpid(), signal.SIGINT)
        reached_the_end = True
    assert not reached_the_end
    assert signal.getsignal(signal.SIGTERM) is before  # handlers are given back


def test_an_ignored_signal_stays_ignored(
    progress_lines: io.StringIO, as_in_a_terminal: None
) -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with second_interrupt_needed("deleting"):
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert progress_lines.getvalue() == ""
