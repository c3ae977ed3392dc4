"""Work beside the builds: waited for, its failure raised, stopped with the body's failure.

`alongside` and `run_stoppable` run real threads and real processes (a `sh` whose child
sleeps), so a stop that does not reach the whole process group fails these tests.
"""

import threading
import time
from pathlib import Path

import pytest

from probelab.alongside import alongside
from probelab.clusters.debootstrap import Stopped, run_stoppable
from probelab.errors import ProbelabError


def test_the_work_is_waited_for_after_the_body() -> None:
    done: list[str] = []

    def work(stop: threading.Event) -> None:
        time.sleep(0.2)  # slower than the body, so the exit has to wait for it
        done.append("work")

    with alongside(work):
        done.append("body")
    assert done == ["body", "work"]


def test_a_failed_work_fails_a_body_that_succeeded() -> None:
    def work(stop: threading.Event) -> None:
        raise ProbelabError("debootstrap failed")

    with pytest.raises(ProbelabError, match="debootstrap failed"), alongside(work):
        pass


def test_a_failed_body_stops_the_work_and_its_error_is_the_one_raised() -> None:
    saw_stop: list[bool] = []

    def work(stop: threading.Event) -> None:
        saw_stop.append(stop.wait(timeout=10))
        raise Stopped("stopped")

    with pytest.raises(KeyboardInterrupt), alongside(work):
        raise KeyboardInterrupt
    assert saw_stop == [True]


def test_a_command_that_ends_gives_its_code_and_output() -> None:
    assert run_stoppable(["sh", "-c", "echo out; echo err >&2; exit 3"], None) == (
        3,
        "out\n",
        "err\n",
    )


def test_a_stop_kills_the_whole_process_group_at_once(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Stopped):
        run_stoppable(["sh", "-c", f"sleep 30 & echo $! > {pid_file}; wait"], stop)
    assert time.monotonic() - started < 5
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 2  # SIGKILL is delivered at once; its exit takes a moment
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)  # the shell's own child went with it


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie that its new parent has not reaped yet."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
