"""The pod network of the local cluster: one bridge, and a guard that keeps traffic home.

The bridge is created here (not by the CNI plugin on the first pod) because the API server,
kubelet and CoreDNS listen on its address before any pod exists. The CNI bridge plugin then
attaches pods to it.

The guard is two iptables chains of our own. Pods may talk to each other, to Services and
to the node, but nothing they send is routed off the bridge; and a packet for the pod or
service range that kube-proxy did not translate is refused instead of following the default
route off this machine. Forwarding is enabled for the bridge only, and every kernel setting
changed is recorded so `down` puts it back.
"""

import json
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from probelab.cleanup import Cleanup
from probelab.clusters.local.config import LocalClusterConfig
from probelab.errors import ProbelabError
from probelab.i18n import _

FORWARD_CHAIN = "PROBELAB-FORWARD"
OUTPUT_CHAIN = "PROBELAB-OUTPUT"
# Chains kubelet writes and leaves behind when it stops (kube-proxy's go with its --cleanup).
KUBELET_CHAINS = {
    "filter": ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY"),
    "nat": ("KUBE-KUBELET-CANARY",),
    "mangle": ("KUBE-KUBELET-CANARY",),
}


def _run(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise ProbelabError(f"`{' '.join(argv)}` failed: {result.stderr.strip()}")
    return result


def _sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


class PodNetwork:
    """Creates and removes the bridge, the sysctls and the guard chains."""

    def __init__(self, config: LocalClusterConfig) -> None:
        self.config = config
        self._saved = config.layout.run / "sysctls.json"

    def _sysctls(self) -> dict[str, str]:
        return {
            f"net.ipv4.conf.{self.config.bridge}.forwarding": "1",
            # Bridged pod traffic must pass iptables, or Services on the bridge do not work.
            "net.bridge.bridge-nf-call-iptables": "1",
        }

    def up(self) -> None:
        self._ensure_bridge()
        self._load_br_netfilter()
        self._apply_sysctls()
        self._install_guard()

    def down(self) -> None:
        """Remove the guard, kubelet's chains, the sysctls and the bridge: each step runs
        even when one before it failed."""
        cleanup = Cleanup(_("removing the pod network"))
        cleanup.run(_("removing the guard chains"), self._remove_guard)
        cleanup.run(_("removing kubelet's chains"), _remove_kubelet_chains)
        cleanup.run(_("restoring sysctls"), self._restore_sysctls)
        cleanup.run(_("deleting the bridge"), self._delete_bridge)
        cleanup.check()

    def _delete_bridge(self) -> None:
        if _run(["ip", "link", "show", self.config.bridge], check=False).returncode == 0:
            _run(["ip", "link", "delete", self.config.bridge])

    def _ensure_bridge(self) -> None:
        bridge = self.config.bridge
        if _run(["ip", "link", "show", bridge], check=False).returncode != 0:
            _run(["ip", "link", "add", bridge, "type", "bridge"])
        address = f"{self.config.node_ip}/{self.config.pod_cidr.prefixlen}"
        shown = _run(["ip", "-o", "-4", "addr", "show", "dev", bridge]).stdout
        if address not in shown:
            _run(["ip", "addr", "add", address, "dev", bridge])
        _run(["ip", "link", "set", bridge, "up"])

    @staticmethod
    def _load_br_netfilter() -> None:
        if not Path("/proc/sys/net/bridge").exists():
            _run(["modprobe", "br_netfilter"])

    def _apply_sysctls(self) -> None:
        saved: dict[str, str] = json.loads(self._saved.read_text()) if self._saved.exists() else {}
        for key, value in self._sysctls().items():
            path = _sysctl_path(key)
            saved.setdefault(key, path.read_text().strip())
            path.write_text(value)
        self._saved.parent.mkdir(parents=True, exist_ok=True)
        self._saved.write_text(json.dumps(saved))

    def _restore_sysctls(self) -> None:
        if not self._saved.exists():
            return
        for key, value in json.loads(self._saved.read_text()).items():
            path = _sysctl_path(key)
            if path.exists():  # the bridge's own keys vanish with the bridge
                path.write_text(value)
        self._saved.unlink()

    def _guard_rules(self) -> dict[str, list[list[str]]]:
        bridge = self.config.bridge
        return {
            FORWARD_CHAIN: [
                ["-i", bridge, "-o", bridge, "-j", "ACCEPT"],
                *refuse("-i", bridge),
            ],
            OUTPUT_CHAIN: [
                # The node's own addresses (the bridge's among them) are delivered via lo.
                ["-o", "lo", "-j", "RETURN"],
                *refuse("-d", str(self.config.service_cidr)),
                *refuse("-d", str(self.config.pod_cidr), "!", "-o", bridge),
            ],
        }

    def _parents(self) -> dict[str, str]:
        return {FORWARD_CHAIN: "FORWARD", OUTPUT_CHAIN: "OUTPUT"}

    def _install_guard(self) -> None:
        install_chains(self._guard_rules(), self._parents())

    def put_guard_first(self) -> None:
        """Make our jumps the first rules of FORWARD and OUTPUT.

        kube-proxy inserts its jumps at the top when it starts but never moves a jump that
        exists, so calling this after kube-proxy is up keeps the guard ahead of all else.
        """
        jump_first(self._parents())

    def _remove_guard(self) -> None:
        remove_chains(self._parents())

    def guard_installed(self) -> bool:
        return chains_present(self._guard_rules())

    def cni_config(self) -> dict[str, object]:
        """The CNI conflist containerd hands to the bridge plugin for every pod."""
        return {
            "cniVersion": "1.0.0",
            "name": "probelab",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.config.bridge,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [
                            [{"subnet": str(self.config.pod_cidr), "gateway": self.config.node_ip}]
                        ],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.config.layout.data / "cni"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }


def _remove_kubelet_chains() -> None:
    """Delete kubelet's chains and every rule that jumps to them."""
    for table, chains in KUBELET_CHAINS.items():
        listing = _run(["iptables", "-w", "-t", table, "-S"], check=False).stdout.splitlines()
        for rule in listing:
            parts = rule.split()
            if parts[:1] == ["-A"] and parts[-1] in chains and "-j" in parts:
                _run(["iptables", "-w", "-t", table, "-D", *parts[1:]], check=False)
        for chain in chains:
            if _run(["iptables", "-w", "-t", table, "-F", chain], check=False).returncode == 0:
                _run(["iptables", "-w", "-t", table, "-X", chain], check=False)


def refuse(*match: str) -> list[list[str]]:
    """Rules that refuse what `match` selects so that a connection fails at once: TCP with a
    reset, anything else with an ICMP error.

    Not ICMP alone: the kernel sends at most about one ICMP error a second to each peer
    (net.ipv4.icmp_ratelimit), and a node whose DNS lookups are refused uses that up, so its
    next connection off the machine would hang until its timeout instead of failing.
    """
    return [
        [*match, "-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"],
        [*match, "-j", "REJECT", "--reject-with", "icmp-net-prohibited"],
    ]


def install_chains(rules: dict[str, list[list[str]]], parents: dict[str, str]) -> None:
    """(Re)create our chains with `rules`, each jumped to first from its parent chain."""
    remove_chains(parents)
    for chain, chain_rules in rules.items():
        _run(["iptables", "-w", "-N", chain])
        for rule in chain_rules:
            _run(["iptables", "-w", "-A", chain, *rule])
    jump_first(parents)


def jump_first(parents: dict[str, str]) -> None:
    """Make the jump to each of our chains the first rule of its parent, exactly once."""
    for chain, parent in parents.items():
        while _run(["iptables", "-w", "-D", parent, "-j", chain], check=False).returncode == 0:
            pass
        _run(["iptables", "-w", "-I", parent, "1", "-j", chain])


def remove_chains(parents: dict[str, str]) -> None:
    """Remove the jumps to our chains, then the chains themselves (absent ones are fine)."""
    for chain, parent in parents.items():
        while _run(["iptables", "-w", "-D", parent, "-j", chain], check=False).returncode == 0:
            pass
        if _run(["iptables", "-w", "-F", chain], check=False).returncode == 0:
            _run(["iptables", "-w", "-X", chain])


def chains_present(chains: Iterable[str]) -> bool:
    return all(
        _run(["iptables", "-w", "-S", chain], check=False).returncode == 0 for chain in chains
    )
