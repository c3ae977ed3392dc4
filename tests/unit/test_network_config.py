"""What the pod network would install, checked without touching the host's network.

`_guard_rules` is judged by running packets through it with a tiny evaluator of the few
iptables matches it uses (first match wins, as in a real chain), rather than by comparing
rule text: what matters is which packets are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from probelab.clusters.local.config import LocalClusterConfig
from probelab.clusters.local.network import FORWARD_CHAIN, OUTPUT_CHAIN, PodNetwork

REJECT_REASONS = {"tcp": "tcp-reset", None: "icmp-net-prohibited"}


@dataclass(frozen=True)
class Packet:
    destination: str
    out_interface: str
    in_interface: str | None = None  # None for packets the host itself sends (OUTPUT)
    protocol: str = "tcp"


def first_match(rules: list[list[str]], packet: Packet) -> list[str] | None:
    """The first rule matching `packet`, or None when it falls through."""
    return next((rule for rule in rules if _matches(rule, packet)), None)


def verdict(rules: list[list[str]], packet: Packet) -> str | None:
    """The target of the first rule matching `packet`, or None when it falls through."""
    rule = first_match(rules, packet)
    return None if rule is None else rule[rule.index("-j") + 1]


def _matches(rule: list[str], packet: Packet) -> bool:
    tokens = iter(rule)
    for token in tokens:
        negate = token == "!"
        option = next(tokens) if negate else token
        if option == "-j":
            return True
        value = next(tokens)
        if option == "-i":
            hit = packet.in_interface == value
        elif option == "-o":
            hit = packet.out_interface == value
        elif option == "-p":
            hit = packet.protocol == value
        elif option == "-d":
            hit = IPv4Address(packet.destination) in IPv4Network(value)
        else:
            raise AssertionError(f"evaluator does not know {option} in {rule}")
        if hit == negate:
            return False
    raise AssertionError(f"rule without a target: {rule}")


@pytest.fixture
def config(tmp_path: Path) -> LocalClusterConfig:
    return LocalClusterConfig(home=tmp_path / "home")


@pytest.fixture
def rules(config: LocalClusterConfig) -> dict[str, list[list[str]]]:
    return PodNetwork(config)._guard_rules()


def test_guard_has_exactly_our_two_chains(rules: dict[str, list[list[str]]]) -> None:
    """`down` removes these two chains by name; any other chain would be left behind."""
    assert set(rules) == {FORWARD_CHAIN, OUTPUT_CHAIN}


def test_every_refusal_is_a_reject_not_a_drop(rules: dict[str, list[list[str]]]) -> None:
    """A REJECT fails a connection at once; a DROP would look like a slow network."""
    for chain in rules.values():
        for rule in chain:
            target = rule[rule.index("-j") + 1]
            assert target in {"ACCEPT", "RETURN", "REJECT"}
            if target == "REJECT":
                protocol = rule[rule.index("-p") + 1] if "-p" in rule else None
                assert rule[-2:] == ["--reject-with", REJECT_REASONS[protocol]]


@pytest.mark.parametrize(
    ("protocol", "reason"), [("tcp", "tcp-reset"), ("udp", "icmp-net-prohibited")]
)
def test_a_refused_tcp_connection_is_reset(
    rules: dict[str, list[list[str]]], protocol: str, reason: str
) -> None:
    """The kernel sends a peer about one ICMP error a second; a node whose DNS lookups are
    refused uses that up, and a TCP connection refused by ICMP alone would then hang."""
    for chain, packet in [
        (FORWARD_CHAIN, Packet("8.8.8.8", "eth0", "probelab0", protocol)),
        (OUTPUT_CHAIN, Packet("10.96.0.1", "eth0", protocol=protocol)),
    ]:
        rule = first_match(rules[chain], packet)
        assert rule is not None and rule[-1] == reason


@pytest.mark.parametrize(
    ("destination", "out_interface", "expected"),
    [
        ("10.244.0.7", "probelab0", "ACCEPT"),  # pod to pod on the bridge
        ("10.244.0.1", "probelab0", "ACCEPT"),  # pod to the node's bridge address
        ("8.8.8.8", "eth0", "REJECT"),  # pod to the internet
        ("192.168.1.10", "eth0", "REJECT"),  # pod to the host's LAN
        ("10.96.0.10", "eth0", "REJECT"),  # untranslated Service address routed out
    ],
)
def test_pods_may_not_leave_the_bridge(
    rules: dict[str, list[list[str]]], destination: str, out_interface: str, expected: str
) -> None:
    packet = Packet(destination, out_interface, in_interface="probelab0")

    assert verdict(rules[FORWARD_CHAIN], packet) == expected


def test_forwarding_between_other_interfaces_is_not_ours_to_judge(
    rules: dict[str, list[list[str]]],
) -> None:
    """The guard must not break Docker's or anyone else's forwarding on this machine."""
    packet = Packet("8.8.8.8", "eth0", in_interface="docker0")

    assert verdict(rules[FORWARD_CHAIN], packet) is None


def test_loopback_is_exempt_first_in_output(
    rules: dict[str, list[list[str]]], config: LocalClusterConfig
) -> None:
    """The node's own addresses, the bridge's included, are delivered through lo."""
    first = rules[OUTPUT_CHAIN][0]

    assert first == ["-o", "lo", "-j", "RETURN"]
    assert verdict(rules[OUTPUT_CHAIN], Packet(config.node_ip, "lo")) == "RETURN"
    assert verdict(rules[OUTPUT_CHAIN], Packet("10.96.0.1", "lo")) == "RETURN"


@pytest.mark.parametrize(
    ("destination", "out_interface", "expected"),
    [
        ("10.96.0.1", "eth0", "REJECT"),  # untranslated Service IP would follow the default route
        ("10.96.255.254", "probelab0", "REJECT"),  # even towards the bridge
        ("10.244.0.9", "eth0", "REJECT"),  # pod range, but not via the bridge
        ("10.244.0.9", "probelab0", None),  # the host reaching a pod on the bridge
        ("93.184.216.34", "eth0", None),  # the host's own traffic elsewhere is untouched
    ],
)
def test_output_keeps_cluster_ranges_on_the_bridge(
    rules: dict[str, list[list[str]]], destination: str, out_interface: str, expected: str | None
) -> None:
    assert verdict(rules[OUTPUT_CHAIN], Packet(destination, out_interface)) == expected


def test_guard_follows_the_configured_bridge_and_ranges(tmp_path: Path) -> None:
    """Nothing in the guard is hard-coded to the default addresses."""
    config = LocalClusterConfig(
        home=tmp_path,
        bridge="lab1",
        pod_cidr=IPv4Network("10.55.0.0/24"),
        service_cidr=IPv4Network("10.66.0.0/16"),
    )
    rules = PodNetwork(config)._guard_rules()

    assert verdict(rules[FORWARD_CHAIN], Packet("10.55.0.5", "lab1", "lab1")) == "ACCEPT"
    assert verdict(rules[FORWARD_CHAIN], Packet("8.8.8.8", "eth0", "lab1")) == "REJECT"
    assert verdict(rules[FORWARD_CHAIN], Packet("8.8.8.8", "eth0", "probelab0")) is None
    assert verdict(rules[OUTPUT_CHAIN], Packet("10.66.0.1", "eth0")) == "REJECT"
    assert verdict(rules[OUTPUT_CHAIN], Packet("10.96.0.1", "eth0")) is None
    assert verdict(rules[OUTPUT_CHAIN], Packet("10.55.0.5", "lab1")) is None


def test_cni_config_attaches_pods_to_our_bridge(config: LocalClusterConfig) -> None:
    """Pods get addresses from the pod range with the node's bridge address as gateway."""
    conflist = PodNetwork(config).cni_config()

    assert conflist["cniVersion"] == "1.0.0"
    assert conflist["name"] == "probelab"
    plugins = conflist["plugins"]
    assert isinstance(plugins, list)
    assert [plugin["type"] for plugin in plugins] == ["bridge", "portmap"]
    bridge = plugins[0]
    assert bridge["bridge"] == "probelab0"
    assert bridge["isGateway"] is True
    assert bridge["ipMasq"] is False, "masquerading would let pods reach the outside"
    ipam = bridge["ipam"]
    assert ipam["type"] == "host-local"
    assert ipam["ranges"] == [[{"subnet": "10.244.0.0/24", "gateway": "10.244.0.1"}]]
    assert ipam["dataDir"] == str(config.home / "data" / "cni")
    assert plugins[1]["capabilities"] == {"portMappings": True}


def test_cni_config_follows_the_configured_bridge_and_range(tmp_path: Path) -> None:
    config = LocalClusterConfig(
        home=tmp_path / "elsewhere", bridge="lab1", pod_cidr=IPv4Network("10.55.0.0/24")
    )
    plugins = PodNetwork(config).cni_config()["plugins"]
    assert isinstance(plugins, list)
    bridge = plugins[0]

    assert bridge["bridge"] == "lab1"
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.55.0.0/24", "gateway": "10.55.0.1"}]]
    assert bridge["ipam"]["dataDir"] == str(tmp_path / "elsewhere" / "data" / "cni")


def test_building_the_config_touches_nothing(config: LocalClusterConfig) -> None:
    """Only `up` may create state; describing the network must not."""
    network = PodNetwork(config)
    network.cni_config()
    network._guard_rules()

    assert not config.home.exists()
