"""Serve an ECR stand-in's registry host from the cluster's own registry.

moto answers the ECR API but not the registry protocol, and the registry host it names
(`<account>.dkr.ecr.<region>.amazonaws.com`) does not resolve here. So that the lab still
runs the seed's flow unchanged (log in to that host, push to it, pull from it with the
`ecr-regcred` secret), the registry probelab runs for the cluster (the local cluster's TLS
registry, or kind's recipe registry) stands in for it:

- credentials: the registry's htpasswd gets the user `AWS` with the token's password, and
  again with every new token; ECR itself is basic auth with the same user;
- pulls: containerd's `hosts.toml` for the ECR host (on the local node, or in every kind
  node) sends requests to that registry; containerd passes kubelet's pull-secret
  credentials along;
- pushes: Docker resolves registry names itself and always dials port 443, so the ECR host
  is pointed at a loopback address in /etc/hosts, where a TLS forwarder with a certificate
  for that name (trusted by Docker in /etc/docker/certs.d/<host>/) passes the bytes on to
  the registry. Every Docker engine on the machine reads those two files, kind's own too.

The host name, port 443 and the `AWS` user exist once per machine, so one stand-in session
runs at a time: a second waits for the first (a lock file, released by the kernel even when
a session is killed). `close` removes everything; the next session replaces what a killed
one left behind, and `unless_a_session_runs` lets a session of another kind clear it.
"""

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import tenacity

from probelab.errors import ProbelabError
from probelab.progress import say
from probelab.registries.base import Credentials, StandInStore
from probelab.registries.ecr import EcrRegistry
from probelab.registries.local import DOCKER_CERTS_D
from probelab.registries.tls_forwarder import TlsForwarder

HOSTS_FILE = Path("/etc/hosts")
# A loopback address of its own, so the forwarder's port 443 collides with nothing else.
FORWARDER_ADDRESS = "127.0.0.44"
HTTPS_PORT = 443
_MARK = "# probelab: ECR stand-in"
LOCK_FILE = Path("/run/lock/probelab-ecr-stand-in.lock")
# How long a session waits for another to end: a whole `pytest labs/` takes about a minute.
LOCK_WAIT = 300.0


class StandInMapping:
    """Makes the ECR stand-in's registry host an alias of the cluster's registry."""

    def __init__(
        self,
        registry: EcrRegistry,
        store: StandInStore,
        *,
        hosts_file: Path = HOSTS_FILE,
        docker_certs_d: Path = DOCKER_CERTS_D,
        lock_file: Path = LOCK_FILE,
    ) -> None:
        self.registry = registry
        self.store = store
        self.hosts_file = hosts_file
        self.docker_certs = docker_certs_d / registry.host
        self.lock_file = lock_file
        self._lock: int | None = None
        self._forwarder: TlsForwarder | None = None
        self._unalias: Callable[[], None] | None = None
        self._username: str | None = None

    def open(self) -> "StandInMapping":
        host = self.registry.host
        self._lock = take_lock(self.lock_file, LOCK_WAIT)
        try:
            self._accept(self.registry.credentials())
            self.registry.on_new_token(self._accept)
            self._unalias = self.store.alias(host)
            upstream, upstream_ca = self.store.upstream()
            self._forwarder = TlsForwarder(
                host, (FORWARDER_ADDRESS, HTTPS_PORT), upstream, upstream_ca
            ).start()
            self.docker_certs.mkdir(parents=True, exist_ok=True)
            (self.docker_certs / "ca.crt").write_bytes(self._forwarder.certificate)
            set_hosts_entry(self.hosts_file, host, FORWARDER_ADDRESS)
        except BaseException:
            self.close()
            raise
        return self

    def _accept(self, credentials: Credentials) -> None:
        """The registry accepts the current token, as ECR would."""
        self.store.set_user(credentials.username, credentials.password)
        self._username = credentials.username

    def close(self) -> None:
        """Undo what `open` did; the lock goes last, even when an undo step fails."""
        try:
            set_hosts_entry(self.hosts_file, self.registry.host, None)
            shutil.rmtree(self.docker_certs, ignore_errors=True)
            if self._forwarder is not None:
                self._forwarder.stop()
                self._forwarder = None
            if self._unalias is not None:
                self._unalias()
                self._unalias = None
            if self._username is not None:
                self.store.remove_user(self._username)
                self._username = None
        finally:
            if self._lock is not None:
                os.close(self._lock)  # releases the lock
                self._lock = None


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding `path`'s exclusive lock, or None while another holds it."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor


def take_lock(path: Path, wait: float) -> int:
    """An exclusive lock on `path`, waiting up to `wait` seconds; the open descriptor."""
    descriptor = _try_lock(path)
    if descriptor is None:
        holder = path.read_text().strip() or "?"
        say(f"waiting up to {wait:.0f}s for the ECR stand-in session of pid {holder} to end")
        # A lock cannot be watched: poll it, as for any other host process.
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_result(lambda taken: taken is None),
            stop=tenacity.stop_after_delay(wait),
            wait=tenacity.wait_fixed(0.5),
            retry_error_callback=lambda state: None,
        )
        descriptor = retrying(_try_lock, path)
        if descriptor is None:
            raise ProbelabError(
                f"another ECR stand-in session (pid {holder}) still runs after {wait:.0f}s; "
                f"it holds {path}"
            )
    os.ftruncate(descriptor, 0)
    os.write(descriptor, str(os.getpid()).encode())
    return descriptor


def unless_a_session_runs(action: Callable[[], None], lock_file: Path = LOCK_FILE) -> bool:
    """Run `action` holding the stand-in lock if no session holds it; False if one does.

    For clearing what a killed session left: held, the lock keeps a new session from
    starting meanwhile. A lock file this user cannot open counts as held.
    """
    try:
        descriptor = _try_lock(lock_file)
    except OSError:
        return False
    if descriptor is None:
        return False
    try:
        action()
    finally:
        os.close(descriptor)
    return True


def set_hosts_entry(hosts_file: Path, host: str, address: str | None) -> None:
    """Point `host` at `address` in a hosts file, or (None) drop probelab's line for it.

    Only lines probelab marked are touched; the file is replaced atomically because every
    resolver on the machine reads it.
    """
    current = hosts_file.read_text().splitlines()
    lines = [line for line in current if not (line.endswith(_MARK) and host in line.split())]
    if address is not None:
        lines.append(f"{address} {host} {_MARK}")
    if lines == current:
        return
    temporary = hosts_file.with_name(f".{hosts_file.name}.probelab.{os.getpid()}")
    temporary.write_text("".join(f"{line}\n" for line in lines))
    temporary.chmod(hosts_file.stat().st_mode & 0o777)
    os.replace(temporary, hosts_file)
