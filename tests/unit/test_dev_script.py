"""scripts/dev as a user: it runs itself again with sudo when the local cluster needs
root, keeping probelab's variables and PATH, and says what to do when there is no sudo.

As root (here and in .ci/run) the test drops to `nobody` with setpriv to be that user; a
stand-in `sudo` on PATH records how it was called instead of raising anything.
"""

import os
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from probelab.signals import as_from_a_terminal

DEV = Path(__file__).resolve().parents[2] / "scripts" / "dev"
FAKE_SUDO = "#!/bin/sh\nprintf 'SUDO'; printf ' [%s]' \"$@\"; echo\n"


@pytest.fixture
def bin_dir() -> Iterator[Path]:
    """A PATH directory the unprivileged user can read (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="probelab-dev-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def as_user(args: list[str], path: str, **env: str) -> subprocess.CompletedProcess[str]:
    command = ["env", "-i", f"PATH={path}", *(f"{k}={v}" for k, v in env.items()), *args]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.fail("running as root and setpriv (util-linux) is missing to drop to nobody")
        command = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    return subprocess.run(command, capture_output=True, text=True, check=False, cwd="/")


def test_a_user_gets_sudo_for_the_local_cluster(bin_dir: Path) -> None:
    sudo = bin_dir / "sudo"
    sudo.write_text(FAKE_SUDO)
    sudo.chmod(sudo.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    path = f"{bin_dir}:/usr/bin:/bin"
    result = as_user(
        [str(DEV), "lab", "--cluster=local", "-k", "liveness"],
        path,
        PROBELAB_HOME="/srv/p",
        LANG="ko_KR.UTF-8",
        SECRET_OF_SOMEONE="x",
    )
    assert result.returncode == 0, result.stderr
    assert "the local cluster needs root: running again with sudo" in result.stderr
    words = result.stdout.split(" [")
    assert words[0] == "SUDO"
    called = [w.rstrip("]\n") for w in words[1:]]
    kept = called[0].removeprefix("--preserve-env=").split(",")
    assert {"PROBELAB_HOME", "LANG"} <= set(kept)
    assert "SECRET_OF_SOMEONE" not in kept
    assert called[1:] == [
        "env",
        f"PATH={path}:/usr/local/sbin:/usr/sbin:/sbin",  # where dockerd and iptables are
        str(DEV),
        "lab",
        "--cluster=local",
        "-k",
        "liveness",
    ]


def test_without_sudo_it_says_to_run_as_root(bin_dir: Path) -> None:
    for directory in (Path("/usr/bin"), Path("/bin")):  # the system's commands but sudo
        for program in directory.iterdir():
            if program.name != "sudo" and not (bin_dir / program.name).exists():
                (bin_dir / program.name).symlink_to(program)
    result = as_user([str(DEV), "cluster", "status"], str(bin_dir))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "scripts/dev: the local cluster needs root and sudo is not installed; run this as root"
    )


def test_kind_needs_sudo_only_for_the_ecr_stand_in(bin_dir: Path) -> None:
    """kind itself needs no root, but the stand-in edits /etc/hosts and serves port 443."""
    sudo = bin_dir / "sudo"
    sudo.write_text(FAKE_SUDO)
    sudo.chmod(sudo.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    path = f"{bin_dir}:/usr/bin:/bin"
    moto = "http://127.0.0.1:40123"
    args = [str(DEV), "lab", "--cluster=kind", "--registry", "ecr"]
    result = as_user(args, path, AWS_ENDPOINT_URL=moto, AWS_ACCESS_KEY_ID="testing")
    assert result.returncode == 0, result.stderr
    assert f"the ECR stand-in (AWS_ENDPOINT_URL={moto}) needs root" in result.stderr
    kept = result.stdout.split(" [")[1].rstrip("]").removeprefix("--preserve-env=").split(",")
    assert {"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID"} <= set(kept)
    # Real ECR (no endpoint on this machine) on kind: no sudo; scripts/dev goes on as the
    # user, here into the missing .venv's tox, which fails after the sudo decision.
    real = as_user(args, path, AWS_ENDPOINT_URL="https://ecr.ap-northeast-2.amazonaws.com")
    assert "SUDO" not in real.stdout and "needs root" not in real.stderr


# The handler writes with os.write: the SIGTERM may come while print("ready") is still in
# the buffered writer (the test reads the line as soon as it is in the pipe), and print in
# the handler would then fail ("reentrant call inside BufferedWriter").
CHILD = """
import os, signal, sys
def stop(number, frame):
    os.write(1, f"child got {signal.Signals(number).name}\\n".encode())
    sys.exit(3)
print("SIGINT default:", signal.getsignal(signal.SIGINT) is signal.default_int_handler)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
print("ready", flush=True)
signal.pause()
"""


# The signal's trap in run_last, slowed down: the child ends and bash reaps it while the
# trap still runs, the order CI once met by chance (the status was then the cut-short wait's).
SLOW_TRAP = 'kill() { builtin kill "$@" || return; [ "$1" != -INT ] || sleep 0.3; }; '


@pytest.mark.parametrize("trap_prefix", ["", SLOW_TRAP], ids=["trap", "slow-trap"])
def test_the_last_step_gets_sigterm_as_sigint_and_files_go_back_after_it(
    trap_prefix: str,
) -> None:
    """The last step is a child: a SIGTERM to scripts/dev reaches it as SIGINT (tox dies on
    SIGTERM, leaving pytest without its teardown; on SIGINT it interrupts pytest), SIGINT is
    at its default there, the exit status is the child's, and under sudo the files go back
    once it has ended."""
    script = (
        f'source "$1"; id() {{ echo 0; }}; give_back() {{ echo "given back" >&2; }}; {trap_prefix}'
        'export SUDO_UID=4242; trap give_back EXIT; run_last python3 -c "$2"'
    )
    dev = subprocess.Popen(
        ["bash", "-c", script, "_", str(DEV), CHILD],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, ended whole if the test fails
        preexec_fn=as_from_a_terminal,
    )
    try:
        assert dev.stdout is not None
        first, second = dev.stdout.readline().strip(), dev.stdout.readline().strip()
        dev.send_signal(signal.SIGTERM)  # to scripts/dev
        out, err = dev.communicate(timeout=10)
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait()
    assert (first, second) == ("SIGINT default: True", "ready"), err
    assert out.strip() == "child got SIGINT", err
    assert dev.returncode == 3
    assert err.strip() == "given back", err
