"""Serve an ECR stand-in's registry host from the local cluster's registry.

moto answers the ECR API but not the registry protocol, and the registry host it names
(`<account>.dkr.ecr.<region>.amazonaws.com`) does not resolve here. So that the lab still
runs the seed's flow unchanged (log in to that host, push to it, pull from it with the
`ecr-regcred` secret), the local TLS registry stands in for it:

- credentials: the registry's htpasswd gets the user `AWS` with the token's password, and
  again with every new token; ECR itself is basic auth with the same user;
- pulls: containerd's `hosts.toml` for the ECR host sends requests to the local registry,
  trusting the cluster CA; containerd passes kubelet's pull-secret credentials along;
- pushes: Docker resolves registry names itself and always dials port 443, so the ECR host
  is pointed at a loopback address in /etc/hosts, where a TLS forwarder with a certificate
  for that name (trusted by Docker in /etc/docker/certs.d/<host>/) passes the bytes on to
  the local registry.

`close` removes all of it. After a run that was killed, the next run replaces what it left.
"""

import os
import shutil
from pathlib import Path

from probelab.clusters.local.cluster import LocalCluster
from probelab.registries.base import Credentials
from probelab.registries.ecr import EcrRegistry
from probelab.registries.local import DOCKER_CERTS_D, LocalRegistryServer
from probelab.registries.tls_forwarder import TlsForwarder

HOSTS_FILE = Path("/etc/hosts")
# A loopback address of its own, so the forwarder's port 443 collides with nothing else.
FORWARDER_ADDRESS = "127.0.0.44"
HTTPS_PORT = 443
_MARK = "# probelab: ECR stand-in"


class StandInMapping:
    """Makes the ECR stand-in's registry host an alias of the local registry."""

    def __init__(
        self,
        registry: EcrRegistry,
        server: LocalRegistryServer | None = None,
        *,
        hosts_file: Path = HOSTS_FILE,
        docker_certs_d: Path = DOCKER_CERTS_D,
    ) -> None:
        self.registry = registry
        self.server = server or LocalCluster()._registry_server(None)
        self.hosts_file = hosts_file
        self.docker_certs = docker_certs_d / registry.host
        self._forwarder: TlsForwarder | None = None
        self._containerd_dir: Path | None = None
        self._username: str | None = None

    def open(self) -> "StandInMapping":
        host = self.registry.host
        try:
            self._accept(self.registry.credentials())
            self.registry.on_new_token(self._accept)
            self._containerd_dir = self.server.alias(host)
            self._forwarder = TlsForwarder(
                host,
                (FORWARDER_ADDRESS, HTTPS_PORT),
                self.server.config.registry_host,
                self.server.pki.ca_cert,
            ).start()
            self.docker_certs.mkdir(parents=True, exist_ok=True)
            (self.docker_certs / "ca.crt").write_bytes(self._forwarder.certificate)
            set_hosts_entry(self.hosts_file, host, FORWARDER_ADDRESS)
        except BaseException:
            self.close()
            raise
        return self

    def _accept(self, credentials: Credentials) -> None:
        """The local registry accepts the current token, as ECR would."""
        self.server.set_user(credentials.username, credentials.password)
        self._username = credentials.username

    def close(self) -> None:
        set_hosts_entry(self.hosts_file, self.registry.host, None)
        shutil.rmtree(self.docker_certs, ignore_errors=True)
        if self._forwarder is not None:
            self._forwarder.stop()
        if self._containerd_dir is not None:
            shutil.rmtree(self._containerd_dir, ignore_errors=True)
        if self._username is not None:
            self.server.remove_user(self._username)


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
