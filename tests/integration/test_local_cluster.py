"""The local cluster is real Kubernetes: checked with the Python client and the kernel.

The lab itself (labs/) proves the behaviour that matters to students on this cluster: the
unauthorized pull, the pull secret, and liveness restarts. These tests check what the
local provider promises on top: the recorded version, a Ready node, every component under
its PID file, `up` returning at once when already up, and pod traffic fenced in.
"""

import subprocess

import pytest
from kubernetes import client

from probelab import kube
from probelab.clusters.base import ClusterHandle
from probelab.clusters.local.cluster import COMPONENTS, LocalCluster
from probelab.clusters.local.network import FORWARD_CHAIN, OUTPUT_CHAIN, PodNetwork


@pytest.fixture(scope="module")
def local(cluster: ClusterHandle) -> LocalCluster:
    if cluster.provider != "local":
        pytest.skip(f"checks the local provider; this session runs on {cluster.provider}")
    return LocalCluster()


def test_server_runs_the_recorded_version(local: LocalCluster, kube_api: client.ApiClient) -> None:
    """`status` names the version from the record `up` wrote; the server must agree."""
    versions = local.last_versions()
    assert versions is not None
    assert kube.check_reachable(kube_api) == versions.kubernetes


def test_node_is_ready_with_the_bridge_address(
    local: LocalCluster, kube_api: client.ApiClient
) -> None:
    status = client.CoreV1Api(kube_api).read_node(local.config.node_name).status
    assert status is not None and status.node_info is not None
    conditions = {c.type: c.status for c in status.conditions or []}
    assert conditions["Ready"] == "True"
    addresses = {a.type: a.address for a in status.addresses or []}
    assert addresses["InternalIP"] == local.config.node_ip
    versions = local.last_versions()
    assert versions is not None
    assert status.node_info.kubelet_version == versions.kubernetes


def test_every_component_runs_under_its_pid_file(local: LocalCluster) -> None:
    statuses = {s.name: s for s in local.status()}
    assert set(statuses) == set(COMPONENTS)
    stopped = [name for name, status in statuses.items() if status.pid is None]
    assert not stopped, f"not running: {stopped}"


def test_up_again_returns_the_running_cluster(local: LocalCluster) -> None:
    handle = local.up()
    assert handle.owned is False
    assert handle.kubeconfig == local.layout.kubeconfig


def test_pod_traffic_cannot_leave_the_bridge(local: LocalCluster) -> None:
    network = PodNetwork(local.config)
    assert network.guard_installed()
    forward = subprocess.run(
        ["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    output = subprocess.run(
        ["iptables", "-w", "-S", "OUTPUT"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    # Our chains come first, before any rule kube-proxy or another tool adds.
    assert forward[1] == f"-A FORWARD -j {FORWARD_CHAIN}"
    assert output[1] == f"-A OUTPUT -j {OUTPUT_CHAIN}"
    rules = subprocess.run(
        ["iptables", "-w", "-S", FORWARD_CHAIN], capture_output=True, text=True, check=True
    ).stdout
    assert f"-i {local.config.bridge} -j REJECT" in rules
