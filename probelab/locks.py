"""A lock on a file, for work that two probelab processes must not do at once.

flock(2) locks belong to the open file, so they go when the process dies, however it dies:
a killed build or PKI writer never leaves a stale lock behind.
"""

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from probelab.progress import say


@contextlib.contextmanager
def exclusive(path: Path, busy: str | None = None, *, shared: bool = False) -> Iterator[None]:
    """Hold `path`'s lock for the block, waiting as long as another process holds it;
    `busy` is said once when this has to wait, so a long wait is never silent. `shared`:
    many holders at once, but none beside an exclusive one (readers of a resource that an
    exclusive holder changes)."""
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            if busy:
                say(busy)
            fcntl.flock(handle, mode)
        yield
