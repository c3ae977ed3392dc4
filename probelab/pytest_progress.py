"""Progress inside pytest: through its terminal reporter, with capture suspended.

pytest captures what tests and fixtures print, so progress lines written to stderr only
appeared after a failure (a first run sat for minutes showing one file name). Here every
write goes through the terminal reporter while capture is suspended, the way pytest's own
live logging does, so lines show in a terminal and in CI logs as they happen; `-q` keeps
only the end lines.
"""

from __future__ import annotations

import contextlib
import sys

import pytest

from probelab import progress

_PREVIOUS = pytest.StashKey[progress.Display]()


@pytest.hookimpl(trylast=True)  # after the terminal reporter is registered
def pytest_configure(config: pytest.Config) -> None:
    """Point progress at this session's terminal (an xdist worker's goes nowhere: left as
    stderr there, which pytest captures and shows with a failure)."""
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is None or hasattr(config, "workerinput"):
        return
    capture = config.pluginmanager.get_plugin("capturemanager")
    guard = capture.global_and_fixture_disabled if capture else contextlib.nullcontext
    # Capture is suspended while plugins configure, so this is the real stdout's answer.
    is_terminal = sys.stdout.isatty()

    writer = config.get_terminal_writer()

    def new_line() -> None:
        with guard():
            terminal.ensure_newline()  # not glued to a test file's name (printed again after)
            if writer.width_of_current_line:  # nor to the dots of `-q`
                writer.line()

    display = progress.Display(
        progress.GuardedFile(lambda text: terminal.write(text, flush=True), guard, is_terminal),
        starts=config.get_verbosity() >= 0,
        terminal=is_terminal,
        new_line=new_line,
    )
    config.stash[_PREVIOUS] = progress.use(display)


def pytest_unconfigure(config: pytest.Config) -> None:
    previous = config.stash.get(_PREVIOUS, None)
    if previous is not None:
        progress.use(previous)
