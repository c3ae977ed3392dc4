"""The Supervisor against real processes: PID files, stale PIDs, stopping and readiness.

Every process here is a child of the test run (`sleep`, `sh`, this Python), started through
a Supervisor whose state lives in tmp_path; the fixture stops whatever a test leaves.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from probelab.clusters.local.processes import ProcessRecord, Supervisor
from probelab.errors import ProbelabError

IGNORE_SIGTERM = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ignoring SIGTERM", flush=True)
time.sleep(30)
"""


def kernel_start_time(pid: int) -> int | None:
    """`starttime` (field 22 of /proc/<pid>/stat, see proc(5)), or None once it has exited."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # fields[0] is field 3, the state
    if fields[0] == "Z":
        return None
    return int(fields[19])


def reap(pid: int) -> int:
    """Collect the exit status of one of our own children (they stay zombies until then)."""
    _, status = os.waitpid(pid, 0)
    return status


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    sup = Supervisor(tmp_path / "run", tmp_path / "logs")
    yield sup
    for pid_file in sorted(sup.run_dir.glob("*.pid")):
        sup.stop(pid_file.stem, grace_seconds=1.0)


def test_start_records_pid_and_kernel_start_time(supervisor: Supervisor) -> None:
    """The PID file is what lets `down` tell our process from a stranger with its PID."""
    record = supervisor.start("sleeper", ["sleep", "30"])

    assert supervisor.pid_file("sleeper").read_text() == f"{record.pid} {record.start_time}\n"
    assert record.start_time == kernel_start_time(record.pid)
    assert supervisor.record("sleeper") == record
    assert supervisor.is_running("sleeper")


def test_started_process_runs_in_its_own_session(supervisor: Supervisor) -> None:
    """Components must outlive the `probelab cluster up` that started them."""
    record = supervisor.start("sleeper", ["sleep", "30"])

    assert os.getsid(record.pid) == record.pid
    assert os.getsid(record.pid) != os.getsid(0)


def test_start_writes_a_header_to_the_component_log(supervisor: Supervisor) -> None:
    """Each start is marked in the log, so a user can tell runs apart in the tail."""
    supervisor.start("sleeper", ["sleep", "30"])

    assert supervisor.log_file("sleeper").read_text().startswith("--- probelab starts sleeper at ")


def test_start_passes_extra_environment(supervisor: Supervisor) -> None:
    """Variables given to `start` reach the process on top of the inherited environment."""
    supervisor.start(
        "printer",
        ["sh", "-c", 'echo "value=$PROBELAB_TEST_VALUE path=${PATH:+set}"; exec sleep 30'],
        env={"PROBELAB_TEST_VALUE": "from-the-test"},
    )
    log_file = supervisor.log_file("printer")

    supervisor.wait_ready(
        "printer", lambda: "path=" in log_file.read_text(), timeout=10, what="its output"
    )

    assert "value=from-the-test path=set" in log_file.read_text()


def test_start_is_idempotent(supervisor: Supervisor) -> None:
    """A second `up` must find the running process, not start a twin."""
    first = supervisor.start("sleeper", ["sleep", "30"])
    second = supervisor.start("sleeper", ["sleep", "31"])

    assert second == first
    assert supervisor.log_file("sleeper").read_text().count("--- probelab starts") == 1


def test_start_of_a_missing_program_is_a_probelab_error(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    """A missing binary is the user's to fix: one line naming the component, no traceback."""
    missing = tmp_path / "no-such-binary"

    with pytest.raises(ProbelabError, match=r"cannot start ghost \(.*no-such-binary\)"):
        supervisor.start("ghost", [str(missing)])
    assert not supervisor.pid_file("ghost").exists()


def test_stop_terminates_then_reports_nothing_to_stop(supervisor: Supervisor) -> None:
    """`stop` sends SIGTERM, forgets the PID file, and a second stop has nothing to do."""
    record = supervisor.start("sleeper", ["sleep", "30"])

    assert supervisor.stop("sleeper", grace_seconds=2.0) is True

    assert kernel_start_time(record.pid) is None
    assert not supervisor.pid_file("sleeper").exists()
    assert not supervisor.is_running("sleeper")
    status = reap(record.pid)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
    assert supervisor.stop("sleeper") is False


def test_stop_kills_a_process_that_ignores_sigterm(
    supervisor: Supervisor, caplog: pytest.LogCaptureFixture
) -> None:
    """After the grace period SIGTERM gives way to SIGKILL, and the user is told."""
    record = supervisor.start("stubborn", [sys.executable, "-c", IGNORE_SIGTERM])
    log_file = supervisor.log_file("stubborn")
    supervisor.wait_ready(
        "stubborn",
        lambda: "ignoring SIGTERM" in log_file.read_text(),
        timeout=10,
        what="its SIGTERM handler",
    )

    with caplog.at_level(logging.WARNING, logger="probelab.clusters.local.processes"):
        assert supervisor.stop("stubborn", grace_seconds=0.2) is True

    assert kernel_start_time(record.pid) is None
    status = reap(record.pid)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert "stubborn ignored SIGTERM" in caplog.text
    assert not supervisor.pid_file("stubborn").exists()


def test_pid_file_with_another_start_time_is_stale_and_never_signalled(
    supervisor: Supervisor,
) -> None:
    """A recycled PID belongs to a stranger (here: this test run) and must be left alone."""
    own_start = kernel_start_time(os.getpid())
    assert own_start is not None
    stale = f"{os.getpid()} {own_start + 1}\n"
    supervisor.run_dir.mkdir(parents=True)
    pid_file = supervisor.pid_file("impostor")
    received: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGTERM, note)
    try:
        pid_file.write_text(stale)
        assert supervisor.record("impostor") is None
        assert not pid_file.exists(), "a stale PID file is removed"

        pid_file.write_text(stale)
        assert not supervisor.is_running("impostor")

        pid_file.write_text(stale)
        assert supervisor.stop("impostor", grace_seconds=0.1) is False
    finally:
        pid_file.unlink(missing_ok=True)  # so the fixture's cleanup cannot signal us either
        signal.signal(signal.SIGTERM, previous)
    assert received == []


def test_pid_file_of_an_exited_process_is_stale(supervisor: Supervisor) -> None:
    """After a reboot or crash the recorded PID may name nothing at all."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    supervisor.run_dir.mkdir(parents=True)
    supervisor.pid_file("gone").write_text(f"{gone.pid} 12345\n")

    assert supervisor.record("gone") is None
    assert supervisor.stop("gone") is False


@pytest.mark.parametrize("text", ["", "garbage", "123", "1 2 3", "12 start"])
def test_unreadable_pid_file_means_not_running(supervisor: Supervisor, text: str) -> None:
    """A truncated or foreign PID file must not crash `status` or `down`."""
    supervisor.run_dir.mkdir(parents=True)
    supervisor.pid_file("broken").write_text(text)

    assert supervisor.record("broken") is None
    assert supervisor.stop("broken") is False


def test_wait_ready_returns_once_ready(supervisor: Supervisor) -> None:
    """Readiness is polled until it holds, and not a call more."""
    supervisor.start("sleeper", ["sleep", "30"])
    calls: list[None] = []

    def ready() -> bool:
        calls.append(None)
        return len(calls) == 3

    supervisor.wait_ready("sleeper", ready, timeout=10, what="the third poll")

    assert len(calls) == 3


def test_wait_ready_fails_fast_with_log_tail_when_the_process_exits(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    """A crashed component is reported at once with its last words, not after the timeout.

    The process blocks on a FIFO until the first readiness poll releases it, so it is
    certainly alive when `start` returns and certainly exits during `wait_ready`.
    """
    release = tmp_path / "release"
    os.mkfifo(release)
    supervisor.start("crasher", ["sh", "-c", f'echo boom; read line < "{release}"; exit 3'])
    released: list[bool] = []

    def ready() -> bool:
        if not released:
            with release.open("w") as fifo:  # blocks until sh opens its end
                fifo.write("go\n")
            released.append(True)
        return False

    started = time.monotonic()
    with pytest.raises(ProbelabError) as raised:
        supervisor.wait_ready("crasher", ready, timeout=10, what="its health check")

    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert message.startswith("crasher exited while waiting for its health check")
    assert str(supervisor.log_file("crasher")) in message
    assert message.rstrip().endswith("boom")


def test_wait_ready_times_out_with_a_clear_error(supervisor: Supervisor) -> None:
    """A component that never becomes ready ends in a ProbelabError naming it and the check."""
    supervisor.start("sleeper", ["sleep", "30"])

    started = time.monotonic()
    with pytest.raises(ProbelabError) as raised:
        supervisor.wait_ready("sleeper", lambda: False, timeout=0.1, what="a check never true")

    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert "sleeper did not become ready (a check never true) within" in message
    assert "--- probelab starts sleeper" in message  # the log tail
    assert supervisor.is_running("sleeper"), "timing out does not stop the process"


def test_wait_ready_times_out_with_a_clear_error_when_ready_keeps_raising(
    supervisor: Supervisor,
) -> None:
    """A health endpoint that still refuses connections at the deadline is a timeout too."""
    supervisor.start("sleeper", ["sleep", "30"])

    def ready() -> bool:
        raise ConnectionRefusedError("connection refused")

    with pytest.raises(ProbelabError, match="sleeper did not become ready"):
        supervisor.wait_ready("sleeper", ready, timeout=0.1, what="its port")


def test_log_tail_keeps_the_last_lines(supervisor: Supervisor) -> None:
    """Error messages quote the end of the log, where the cause usually is."""
    supervisor.log_dir.mkdir(parents=True)
    supervisor.log_file("chatty").write_text("".join(f"line {n}\n" for n in range(1, 41)))

    assert supervisor.log_tail("chatty", lines=3) == "line 38\nline 39\nline 40"
    assert supervisor.log_tail("chatty").splitlines()[0] == "line 16"
    assert supervisor.log_tail("silent") == "(no log)"


def test_process_record_is_a_value() -> None:
    """Records compare by PID and start time, which is what idempotent `start` relies on."""
    assert ProcessRecord(10, 20) == ProcessRecord(10, 20)
    assert ProcessRecord(10, 20) != ProcessRecord(10, 21)
