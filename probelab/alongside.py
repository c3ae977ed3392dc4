"""Work run in a thread beside other work, and commands that such a thread can stop.

On a fresh machine the local cluster's Kubernetes build takes minutes, much of them spent
on module downloads and single-threaded links; debootstrap, which mostly waits on the
Debian mirror, and the small Go builds (etcd, CoreDNS, pause) fit beside it.

A thread cannot be interrupted from outside, so side work is handed a `stop` event and
runs its commands with `run_stoppable`, which kills them once `stop` is set.
"""

import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Generic, TypeVar

from probelab.errors import ProbelabError

_STOP_POLL_SECONDS = 0.5

T = TypeVar("T")


class Stopped(ProbelabError):
    """A stoppable command was stopped before it finished."""


class Beside(Generic[T]):
    """The side work of an `alongside` block: its stop event and, once done, its value."""

    def __init__(self, stop: threading.Event, future: "Future[T]") -> None:
        self.stop = stop
        self._future = future

    def result(self) -> T:
        """Wait for the side work and return its value, or raise its failure."""
        return self._future.result()


@contextmanager
def alongside(work: Callable[[threading.Event], T]) -> Iterator[Beside[T]]:
    """Run `work(stop)` in a thread while the body runs; wait for it at the end.

    The body may take the work's value with `result()`. After a body that succeeded,
    `work`'s own failure is raised. When the body fails (Ctrl-C too), `stop` is set and the
    thread waited for, so nothing `work` started outlives the body, and the body's error
    is the one raised.
    """
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="alongside") as pool:
        beside = Beside(stop, pool.submit(work, stop))
        try:
            yield beside
        except BaseException:
            stop.set()
            raise
        beside.result()


def run_stoppable(
    argv: Sequence[str],
    stop: threading.Event | None,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[int, str, str]:
    """Run `argv` to its end (exit code, stdout, stderr), unless `stop` is set first or this
    thread is interrupted: then its whole process group is killed and waited for.

    Its own process group, so that a terminal's Ctrl-C does not kill it halfway behind the
    caller's back: the caller decides, and the command's children (dpkg in debootstrap's
    chroot, the compilers and linkers `go build` starts) go with it.
    """
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        while True:
            try:
                out, err = process.communicate(timeout=_STOP_POLL_SECONDS)
            except subprocess.TimeoutExpired:
                if stop is not None and stop.is_set():
                    raise Stopped(f"{argv[0]} stopped") from None
                continue
            return process.returncode, out, err
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
