"""Work beside the builds: waited for, its value or failure taken, stopped with the body's
failure.

`alongside` and `run_stoppable` run real threads and real processes (a `sh` whose child
sleeps), so a stop that does not reach the whole process group fails these tests.
"""

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import assert_gone, started_pid
from probelab.alongside import Stopped, alongside, run_stoppable
from probelab.errors import ProbelabError


def test_the_work_is_waited_for_after_the_body() -> None:
    done: list[str] = []

    def work(stop: threading.Event) -> None:
        time.sleep(0.2)  # slower than the body, so the exit has to wait for it
        done.append("work")

    with alongside(work):
        done.append("body")
    assert done == ["body", "work"]


def test_the_body_takes_the_works_value() -> None:
    def work(stop: threading.Event) -> str:
        time.sleep(0.2)
        return "etcd"

    with alongside(work) as beside:
        assert beside.result() == "etcd"  # waits for it
    assert beside.result() == "etcd"  # and keeps it


def test_a_failed_work_fails_a_body_that_succeeded_once_the_body_is_done() -> None:
    body: list[str] = []

    def work(stop: threading.Event) -> None:
        raise ProbelabError("debootstrap failed")

    with pytest.raises(ProbelabError, match="debootstrap failed"), alongside(work):
        time.sleep(0.2)  # the work has failed by now; the body still runs to its end
        body.append("done")
    assert body == ["done"]


def test_a_failed_body_stops_the_works_command_and_its_error_is_the_one_raised(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "child.pid"

    def work(stop: threading.Event) -> None:
        run_stoppable(["sh", "-c", f"sleep 30 & echo $! > {pid_file}; wait"], stop)

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt), alongside(work):
        started_pid(pid_file)
        raise KeyboardInterrupt
    assert time.monotonic() - started < 5  # the 30 s sleep did not hold the exit
    assert_gone(started_pid(pid_file))


def test_nested_work_is_stopped_from_the_inside_out(tmp_path: Path) -> None:
    """debootstrap beside the builds, and the small builds beside Kubernetes: a failed
    Kubernetes build stops both, and its error is the one raised."""
    pids = {name: tmp_path / f"{name}.pid" for name in ("outer", "inner")}

    def sleeper(name: str) -> Callable[[threading.Event], None]:
        def work(stop: threading.Event) -> None:
            run_stoppable(["sh", "-c", f"sleep 30 & echo $! > {pids[name]}; wait"], stop)

        return work

    with (
        pytest.raises(ProbelabError, match="kubernetes failed"),
        alongside(sleeper("outer")),
        alongside(sleeper("inner")),
    ):
        for pid_file in pids.values():
            started_pid(pid_file)
        raise ProbelabError("kubernetes failed")
    for pid_file in pids.values():
        assert_gone(started_pid(pid_file))


def test_a_command_that_ends_gives_its_code_and_output() -> None:
    assert run_stoppable(["sh", "-c", "echo out; echo err >&2; exit 3"], None) == (
        3,
        "out\n",
        "err\n",
    )


def test_a_command_runs_in_the_folder_and_environment_given(tmp_path: Path) -> None:
    code, out, _ = run_stoppable(
        ["sh", "-c", 'pwd; echo "$GOTOOLCHAIN"'], None, cwd=tmp_path, env={"GOTOOLCHAIN": "local"}
    )
    assert (code, out) == (0, f"{tmp_path}\nlocal\n")


def test_a_stop_kills_the_whole_process_group_at_once(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Stopped):
        run_stoppable(["sh", "-c", f"sleep 30 & echo $! > {pid_file}; wait"], stop)
    assert time.monotonic() - started < 5
    assert_gone(started_pid(pid_file))  # the shell's own child went with it
