"""Work that waits on the network or the disk, run in a thread beside CPU-bound work.

On a fresh machine the local cluster's Go builds keep every core busy for minutes while
debootstrap, the other long first-run step, mostly waits on the Debian mirror: side by
side, the second costs almost nothing.
"""

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager


@contextmanager
def alongside(work: Callable[[threading.Event], object]) -> Iterator[None]:
    """Run `work(stop)` in a thread while the body runs; wait for it at the end.

    After a body that succeeded, `work`'s own failure is raised. When the body fails (Ctrl-C
    too), `stop` is set and the thread waited for, so nothing `work` started outlives the
    body, and the body's error is the one raised.
    """
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="alongside") as pool:
        future = pool.submit(work, stop)
        try:
            yield
        except BaseException:
            stop.set()
            raise
        future.result()
