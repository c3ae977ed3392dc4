"""Checks before `up` starts anything, each failing with one line that says the fix."""

import errno
import os
import shutil
import socket

from probelab.clusters.local.config import LocalClusterConfig
from probelab.clusters.local.processes import Supervisor
from probelab.errors import ProbelabError

# Commands `up` runs, and the Debian package that brings each.
REQUIRED_COMMANDS = {
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "dockerd": "docker.io",
    "docker-registry": "docker-registry",
    "debootstrap": "debootstrap",
    "iptables": "iptables",
    "ip": "iproute2",
    "conntrack": "conntrack",
}
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")


def ports(config: LocalClusterConfig) -> dict[int, tuple[str, str]]:
    """Each TCP port `up` listens on: the address and the component."""
    node = config.node_ip
    return {
        config.etcd_client_port: ("127.0.0.1", "etcd"),
        config.etcd_peer_port: ("127.0.0.1", "etcd"),
        config.apiserver_port: (node, "kube-apiserver"),
        10257: ("127.0.0.1", "kube-controller-manager"),
        10259: ("127.0.0.1", "kube-scheduler"),
        config.registry_port: ("127.0.0.1", "registry"),
        10250: (node, "kubelet"),
        10248: ("127.0.0.1", "kubelet"),
        10249: ("127.0.0.1", "kube-proxy"),
        10256: ("127.0.0.1", "kube-proxy"),
        53: (node, "coredns"),
        8091: ("127.0.0.1", "coredns"),
        8181: ("127.0.0.1", "coredns"),
    }


def _port_taken(address: str, port: int) -> bool:
    """Whether binding `address:port` fails because something holds it.

    Before the bridge exists its address cannot be bound at all; the wildcard address then
    stands in for it.
    """
    for candidate in (address, "0.0.0.0"):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((candidate, port))
            except OSError as error:
                if error.errno == errno.EADDRNOTAVAIL:
                    continue
                return True
            return False
    return False


def check(config: LocalClusterConfig, supervisor: Supervisor) -> None:
    """Raise ProbelabError for the first thing that would make `up` fail."""
    if os.geteuid() != 0:
        raise ProbelabError(
            "the local cluster needs root (it runs kubelet, containerd and iptables); "
            "run as root or with sudo"
        )
    missing = sorted({pkg for cmd, pkg in REQUIRED_COMMANDS.items() if shutil.which(cmd) is None})
    if missing:
        raise ProbelabError(f"missing packages for the local cluster: {', '.join(missing)}")
    absent = [p for p in CNI_PLUGINS if not os.access(f"/usr/lib/cni/{p}", os.X_OK)]
    if absent:
        raise ProbelabError(
            f"CNI plugins {', '.join(absent)} missing in /usr/lib/cni; "
            "install Debian's containernetworking-plugins"
        )
    config.home.mkdir(parents=True, exist_ok=True)
    free_gib = shutil.disk_usage(config.home).free / 2**30
    if free_gib < config.min_free_disk_gib:
        raise ProbelabError(
            f"only {free_gib:.1f} GiB free under {config.home}; the local cluster needs "
            f"{config.min_free_disk_gib:.0f} GiB (set PROBELAB_HOME to a larger disk)"
        )
    for port, (address, component) in sorted(ports(config).items()):
        if supervisor.is_running(component):
            continue
        if _port_taken(address, port):
            raise ProbelabError(
                f"port {port} (for {component}) is already in use; stop what listens there "
                f"(`ss -ltnp 'sport = :{port}'` shows it) and run `up` again"
            )
