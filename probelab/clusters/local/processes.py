"""Start, track and stop the host processes of the local cluster.

Every process `up` starts gets a PID file holding its PID *and* its start time from
`/proc/<pid>/stat`. `down` signals a PID only when both still match, so it stops exactly
what `up` started and never a stranger that inherited a recycled PID. Processes run in
their own session so they outlive the command that started them, with stdout and stderr in
one log file per component: the log tail is what a user sees when a component dies.
"""

import logging
import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import tenacity

from probelab.errors import ProbelabError
from probelab.pids import process_start_time

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 25


@dataclass(frozen=True)
class ProcessRecord:
    """What a PID file says: the PID and the kernel's start time for it."""

    pid: int
    start_time: int


def seconds_since_start(record: ProcessRecord) -> float:
    """How long the recorded process has run (its start in clock ticks since boot)."""
    since_boot = float(Path("/proc/uptime").read_text().split()[0])
    return since_boot - record.start_time / os.sysconf("SC_CLK_TCK")


class Supervisor:
    """The processes of one cluster, named by component, tracked by PID files."""

    def __init__(self, run_dir: Path, log_dir: Path) -> None:
        self.run_dir = run_dir
        self.log_dir = log_dir

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def record(self, name: str) -> ProcessRecord | None:
        """The live process recorded for `name`, or None (and a stale PID file removed)."""
        path = self.pid_file(name)
        try:
            pid_text, start_text = path.read_text().split()
            record = ProcessRecord(int(pid_text), int(start_text))
        except (FileNotFoundError, ValueError):
            return None
        if process_start_time(record.pid) != record.start_time:
            path.unlink(missing_ok=True)
            return None
        return record

    def is_running(self, name: str) -> bool:
        return self.record(name) is not None

    def start(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> ProcessRecord:
        """Start `argv` detached, logging to the component's log file; idempotent."""
        running = self.record(name)
        if running is not None:
            return running
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log.debug("starting %s: %s", name, " ".join(argv))
        with self.log_file(name).open("ab") as out:
            out.write(f"--- probelab starts {name} at {time.ctime()}\n".encode())
            out.flush()
            try:
                process = subprocess.Popen(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env={**os.environ, **(env or {})},
                )
            except OSError as error:
                raise ProbelabError(f"cannot start {name} ({argv[0]}): {error}") from error
        start_time = process_start_time(process.pid)
        if start_time is None:
            raise ProbelabError(f"{name} exited at once:\n{self.log_tail(name)}")
        record = ProcessRecord(process.pid, start_time)
        self.pid_file(name).write_text(f"{record.pid} {record.start_time}\n")
        return record

    def stop(self, name: str, *, grace_seconds: float = 15.0) -> bool:
        """SIGTERM the recorded process, SIGKILL it after the grace period.

        Returns whether there was anything to stop.
        """
        record = self.record(name)
        if record is None:
            return False
        os.kill(record.pid, signal.SIGTERM)
        if not self._wait_gone(record, grace_seconds):
            log.warning("%s ignored SIGTERM for %.0fs; killing it", name, grace_seconds)
            os.kill(record.pid, signal.SIGKILL)
            self._wait_gone(record, grace_seconds)
        self.pid_file(name).unlink(missing_ok=True)
        return True

    @staticmethod
    def _wait_gone(record: ProcessRecord, timeout: float) -> bool:
        """Wait for the process to exit; it is not our child, so poll its /proc entry."""

        def alive() -> bool:
            return process_start_time(record.pid) == record.start_time

        try:
            tenacity.Retrying(
                stop=tenacity.stop_after_delay(timeout),
                wait=tenacity.wait_exponential(multiplier=0.02, max=0.5),
                retry=tenacity.retry_if_result(bool),
            )(alive)
        except tenacity.RetryError:
            return False
        return True

    def log_tail(self, name: str, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of the component's log, for error messages."""
        try:
            with self.log_file(name).open(errors="replace") as handle:
                return "".join(deque(handle, maxlen=lines)).rstrip()
        except FileNotFoundError:
            return "(no log)"

    def wait_ready(
        self, name: str, ready: Callable[[], bool], *, timeout: float, what: str
    ) -> None:
        """Wait until `ready()` holds, failing at once with the log tail if `name` dies.

        A health endpoint cannot be watched, so this polls with exponential back-off
        (tenacity) up to a deadline.
        """

        def check() -> bool:
            if not self.is_running(name):
                raise ProbelabError(
                    f"{name} exited while waiting for {what}; last lines of "
                    f"{self.log_file(name)}:\n{self.log_tail(name)}"
                )
            return ready()

        try:
            tenacity.Retrying(
                stop=tenacity.stop_after_delay(timeout),
                wait=tenacity.wait_exponential(multiplier=0.05, max=1.0),
                retry=tenacity.retry_if_result(lambda ok: not ok)
                | tenacity.retry_if_exception_type(OSError),
                reraise=True,
            )(check)
        except (tenacity.RetryError, OSError) as error:  # OSError: still refused at the end
            raise ProbelabError(
                f"{name} did not become ready ({what}) within {timeout:.0f}s; last lines of "
                f"{self.log_file(name)}:\n{self.log_tail(name)}"
            ) from error
