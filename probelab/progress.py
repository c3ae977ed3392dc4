"""Progress lines for long waits, on stderr, readable in a terminal and in CI logs."""

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

from probelab.secrets import SECRETS

console = Console(stderr=True, highlight=False)


def say(message: str) -> None:
    """One line of progress (secrets masked)."""
    console.print(SECRETS.mask(message), markup=False)


@contextmanager
def step(what: str) -> Iterator[None]:
    """Show `what` while it runs (a spinner in a terminal) and how long it took."""
    start = time.monotonic()
    if not console.is_terminal:
        say(f"... {what}")
    with console.status(SECRETS.mask(what)):
        yield
    say(f"ok  {what} ({time.monotonic() - start:.1f}s)")
