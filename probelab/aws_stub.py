"""An AWS stand-in for ECR: moto in server mode, a real HTTP endpoint on 127.0.0.1.

The ECR tests start it as a subprocess, and so can a person trying `--registry=ecr` without
an AWS account (`python -m probelab.aws_stub` prints what to export). boto3 reaches it
through `AWS_ENDPOINT_URL`, the way it would reach AWS, so the provider's code runs
unchanged: signing, retries, error parsing. moto answers STS and ECR (CreateRepository,
DescribeRepositories, GetAuthorizationToken) for account 123456789012; its token is always
`AWS:123456789012-auth-token`, dated 2015. The port is the one the server picked itself
(`-p 0`) and printed, so two sessions never race for one. moto is a dev dependency.

(PYTEST_DONT_REWRITE: test modules load this as a plugin after importing it.)

`environment` keeps everything away from real AWS and from the user's AWS files: the
endpoint is this server, the instance-metadata and container credential sources are off
(they would send requests off this machine), and config files point nowhere.
"""

import json
import queue
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

import pytest

from probelab.errors import ProbelabError

ACCOUNT = "123456789012"
STARTUP_TIMEOUT = 30.0
_READY = re.compile(r"Running on (http://127\.0\.0\.1:\d+)")
# Variables that would make boto3 look elsewhere than the environment we set.
_AWS_SOURCES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)


class MotoServer:
    """A running `python -m moto.server` and how to point boto3 at it."""

    def __init__(self, url: str) -> None:
        self.url = url

    def environment(self, home: Path, *, credentials: bool = True) -> dict[str, str | None]:
        """Variables to set (None: unset) so boto3 talks to this server and nothing else."""
        env: dict[str, str | None] = dict.fromkeys(_AWS_SOURCES)
        env |= {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(home / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
            "AWS_ACCESS_KEY_ID": "testing" if credentials else None,
            "AWS_SECRET_ACCESS_KEY": "testing" if credentials else None,
        }
        return env

    def use(self, monkeypatch: pytest.MonkeyPatch, home: Path, *, credentials: bool = True) -> None:
        """Point this process (and the subprocesses it starts) at this server only."""
        for name, value in self.environment(home, credentials=credentials).items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)

    def reset(self) -> None:
        """Forget every repository, user and policy, and stop checking permissions."""
        self._post("/moto-api/reset", b"")
        self._post("/moto-api/reset-auth", b"inf")

    def require_auth(self) -> None:
        """From now on, check IAM permissions on every request, as AWS does."""
        self._post("/moto-api/reset-auth", b"0")

    def _post(self, path: str, body: bytes) -> None:
        request = urllib.request.Request(
            self.url + path, data=body, method="POST", headers={"Content-Type": "text/plain"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            json.loads(response.read() or b"{}")

    @classmethod
    @contextmanager
    def running(cls) -> Iterator["MotoServer"]:
        """Start the server, wait until it listens, and stop it when the block ends."""
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_read_lines, args=(process, lines), daemon=True).start()
        try:
            yield cls(_wait_for_url(lines))
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class ManualClock:
    """A clock for `EcrRegistry(clock=...)` that moves only when told to: token expiry in
    tests, without waiting 12 hours."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


# Fixtures for test modules that declare `pytest_plugins = ["probelab.aws_stub"]`.


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    """One stand-in per test module."""
    with MotoServer.running() as server:
        yield server


@pytest.fixture
def aws(moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MotoServer:
    """The module's stand-in, emptied, with boto3 pointed at it for this test only."""
    moto.reset()
    moto.use(monkeypatch, tmp_path)
    return moto


def _read_lines(process: "subprocess.Popen[str]", lines: "queue.Queue[str | None]") -> None:
    """Forward the server's stderr (also keeps its pipe from filling up)."""
    assert process.stderr is not None
    for line in process.stderr:
        lines.put(line)
    lines.put(None)


def _wait_for_url(lines: "queue.Queue[str | None]") -> str:
    """The URL the server prints once its socket listens; its output if it dies first."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    seen: list[str] = []
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise ProbelabError(f"moto printed no address within {STARTUP_TIMEOUT:.0f}s") from None
        if line is None:
            last = seen[-1].strip() if seen else "no output"
            raise ProbelabError(f"moto stopped before listening (moto[server] installed?): {last}")
        seen.append(line)
        if match := _READY.search(line):
            return match.group(1)


def main() -> int:
    """Run a stand-in until Ctrl-C or SIGTERM, printing what points boto3 at it."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # so the server is stopped too
    try:
        with (
            MotoServer.running() as server,
            tempfile.TemporaryDirectory(prefix="probelab-aws-stub-") as home,
        ):
            for name, value in server.environment(Path(home)).items():
                print(f"export {name}={shlex.quote(value)}" if value else f"unset {name}")
            print("# moto answers at", server.url, "until Ctrl-C", flush=True)
            with suppress(KeyboardInterrupt):
                threading.Event().wait()
    except ProbelabError as error:
        print(f"probelab.aws_stub: {error}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
