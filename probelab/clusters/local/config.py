"""Settings and on-disk layout of the local cluster.

Everything the cluster writes lives under one state directory (`PROBELAB_HOME`, default
`/var/lib/probelab`): certificates, configs, data, sockets, PID files and logs. Built
binaries live in the cache (`PROBELAB_CACHE`, default `~/.cache/probelab`), so a `down`
followed by `up` rebuilds nothing.

The pod and service ranges exist only on the bridge this cluster creates; addresses are
fixed so that kubeconfigs and certificates stay valid across restarts.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path

_POD_CIDR = IPv4Network("10.244.0.0/24")
_SERVICE_CIDR = IPv4Network("10.96.0.0/16")


def _default_home() -> Path:
    return Path(os.environ.get("PROBELAB_HOME", "/var/lib/probelab"))


def _default_cache() -> Path:
    if "PROBELAB_CACHE" in os.environ:
        return Path(os.environ["PROBELAB_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "probelab"


@dataclass(frozen=True)
class LocalClusterConfig:
    """What the local cluster is made of and where it keeps its state."""

    home: Path = field(default_factory=_default_home)
    cache: Path = field(default_factory=_default_cache)
    node_name: str = "probelab"
    context: str = "probelab-local"
    bridge: str = "probelab0"
    pod_cidr: IPv4Network = _POD_CIDR
    service_cidr: IPv4Network = _SERVICE_CIDR
    cluster_domain: str = "cluster.local"
    apiserver_port: int = 6443
    etcd_client_port: int = 2379
    etcd_peer_port: int = 2380
    registry_port: int = 5443
    min_free_disk_gib: float = 8.0
    # Extra command-line flags per component name (e.g. feature gates for kubelet).
    extra_args: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def node_ip(self) -> str:
        """The bridge's own address: pods reach the node, API server and DNS through it."""
        return str(self.pod_cidr[1])

    @property
    def kubernetes_service_ip(self) -> str:
        return str(self.service_cidr[1])

    @property
    def apiserver_url(self) -> str:
        return f"https://{self.node_ip}:{self.apiserver_port}"

    @property
    def registry_host(self) -> str:
        return f"127.0.0.1:{self.registry_port}"

    @property
    def layout(self) -> "Layout":
        return Layout(self.home)


@dataclass(frozen=True)
class Layout:
    """Paths under the state directory."""

    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def bin(self) -> Path:
        """Links to the built binaries, so users can run `kubectl` from here."""
        return self.root / "bin"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig handed to users and tests."""
        return self.root / "kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.root / "cluster.json"

    @property
    def containerd_socket(self) -> Path:
        return self.run / "containerd.sock"

    @property
    def docker_socket(self) -> Path:
        return self.run / "docker.sock"

    def make(self) -> None:
        for path in (self.pki, self.etc, self.data, self.run, self.logs, self.bin):
            path.mkdir(parents=True, exist_ok=True)
