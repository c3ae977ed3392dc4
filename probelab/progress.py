"""Progress lines for long steps, readable in a terminal and in CI logs.

Every `step` prints a start line and an end line with its duration; in a terminal a
spinner shows the steps still running (one display for all of them: steps run in threads
too). Lines go to stderr by default; the pytest plugin points them at pytest's terminal
with capture suspended around each write (`use`), so they show while tests run, and
leaves out start lines with `-q`. Every line passes through the secrets mask.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import IO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner

from probelab.secrets import SECRETS


class GuardedFile:
    """A text stream that runs `guard()` around every write (pytest: capture suspended)."""

    def __init__(
        self,
        write: Callable[[str], None],
        guard: Callable[[], AbstractContextManager[object]],
        is_terminal: bool,
    ) -> None:
        self._write = write
        self._guard = guard
        self._is_terminal = is_terminal
        self._lock = threading.RLock()

    def write(self, text: str) -> int:
        with self._lock, self._guard():
            self._write(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return self._is_terminal


class Display:
    """Where progress goes, whether start lines show, and the live spinner."""

    def __init__(
        self,
        file: IO[str] | GuardedFile,
        *,
        starts: bool,
        terminal: bool,
        new_line: Callable[[], None] = lambda: None,
    ) -> None:
        """`new_line` runs before a line (when no spinner is up): start it on a fresh line."""
        self.console = Console(
            file=file,  # type: ignore[arg-type]  # only write/flush/isatty are used
            force_terminal=terminal,
            highlight=False,
            soft_wrap=True,
        )
        self.starts = starts
        self.terminal = terminal
        self._new_line = new_line
        self._lock = threading.RLock()
        self._running: dict[int, tuple[str, float, Spinner]] = {}
        self._ids = itertools.count()
        self._live: Live | None = None

    def line(self, text: str) -> None:
        with self._lock:
            if self._live is None:
                self._new_line()
            self.console.print(SECRETS.mask(text), markup=False)

    def begin(self, what: str) -> int:
        with self._lock:
            if self.starts:
                self.line(f"... {what}")
            token = next(self._ids)
            self._running[token] = (SECRETS.mask(what), time.monotonic(), Spinner("dots"))
            if self.terminal and self._live is None:
                self._new_line()
                self._live = Live(
                    get_renderable=self._render,
                    console=self.console,
                    refresh_per_second=8,
                    transient=True,
                )
                self._live.start()
            return token

    def end(self, token: int, failed: bool) -> None:
        with self._lock:
            what, started, _ = self._running.pop(token)
            if not self._running and self._live is not None:
                self._live.stop()
                self._live = None
            verdict = "failed" if failed else "ok "
            self.line(f"{verdict} {what} ({time.monotonic() - started:.1f}s)")

    def close(self) -> None:
        with self._lock:
            if self._live is not None:
                self._live.stop()
                self._live = None

    def _render(self) -> RenderableType:
        now = time.monotonic()
        spinners = []
        for what, started, spinner in list(self._running.values()):
            spinner.update(text=f"{what} ({now - started:.0f}s)")
            spinners.append(spinner)
        return Group(*spinners)


_display = Display(sys.stderr, starts=True, terminal=sys.stderr.isatty())


def use(display: Display) -> Display:
    """Send progress to `display` from now on; returns the one it replaces."""
    global _display
    previous, _display = _display, display
    previous.close()
    return previous


def say(message: str) -> None:
    """One line of progress (secrets masked)."""
    _display.line(message)


@contextmanager
def step(what: str) -> Iterator[None]:
    """Show `what` while it runs (a start line, a spinner in a terminal) and how long it
    took, or that it failed."""
    display = _display
    token = display.begin(what)
    failed = True
    try:
        yield
        failed = False
    finally:
        display.end(token, failed)
