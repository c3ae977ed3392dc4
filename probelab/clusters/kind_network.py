"""kind's Docker network, kept home: its nodes reach each other and this machine, nothing else.

kind puts every node on one Docker bridge network (`kind`). The guard is one iptables chain
of our own, jumped to first from FORWARD: traffic between containers of that network is
accepted, anything else routed from or to its bridge is refused, so neither a node nor a
pod inside one sends a packet off this machine, whatever the engine's own forwarding and
NAT rules allow. The node's published API server port and the registry's stay reachable
from the host, since that traffic is delivered locally, not forwarded.

probelab creates the network itself when it is missing (kind then uses it as it finds it),
so the guard is in place before the first node starts; both go when the cluster probelab
created is deleted, unless another cluster's containers are still on the network.
"""

import contextlib
from collections.abc import Mapping

import docker
import docker.errors

from probelab.clusters.local.network import (
    chains_present,
    install_chains,
    refuse,
    remove_chains,
)

CHAIN = "PROBELAB-KIND"
NETWORK = "kind"
OWNED_LABEL = "dev.probelab.kind-network"


def guard_rules(bridge: str) -> dict[str, list[list[str]]]:
    return {
        CHAIN: [
            ["-i", bridge, "-o", bridge, "-j", "ACCEPT"],
            *refuse("-i", bridge),
            *refuse("-o", bridge),
        ]
    }


def bridge_name(network: Mapping[str, object]) -> str:
    """The Linux bridge Docker made for a bridge network (`br-<id>` unless it was named)."""
    options = network.get("Options") or {}
    assert isinstance(options, dict)
    named = options.get("com.docker.network.bridge.name")
    return str(named) if named else f"br-{str(network['Id'])[:12]}"


class KindNetworkGuard:
    """The `kind` network on one engine and the guard around its bridge."""

    def __init__(self, engine: docker.DockerClient, name: str = NETWORK) -> None:
        self.engine = engine
        self.name = name

    def ensure_network(self) -> bool:
        """Create the network unless it exists; True when this call created it."""
        try:
            self.engine.networks.get(self.name)
            return False
        except docker.errors.NotFound:
            self.engine.networks.create(
                self.name,
                driver="bridge",
                labels={OWNED_LABEL: "true"},
                options={"com.docker.network.bridge.enable_ip_masquerade": "false"},
            )
            return True

    def bridge(self) -> str:
        return bridge_name(self.engine.networks.get(self.name).attrs)

    def install(self) -> None:
        install_chains(guard_rules(self.bridge()), {CHAIN: "FORWARD"})

    def installed(self) -> bool:
        return chains_present([CHAIN])

    def in_use(self) -> bool:
        """Containers (another cluster's nodes, a registry) are still on the network."""
        try:
            found = self.engine.networks.get(self.name)
        except docker.errors.NotFound:
            return False
        return bool(found.attrs.get("Containers"))

    def remove(self, *, network: bool) -> None:
        """Remove the guard, and the network too when `network` (one probelab created).

        Both stay while other containers are on the network: another cluster shares it and
        must stay guarded.
        """
        if self.in_use():
            return
        remove_chains({CHAIN: "FORWARD"})
        if not network:
            return
        with contextlib.suppress(docker.errors.NotFound):
            self.engine.networks.get(self.name).remove()
