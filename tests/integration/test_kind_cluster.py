"""A real kind cluster: the node, the network guard, and what the node image must provide.

Runs when the session's cluster is kind (`--cluster=kind`), on this machine with the node
image made here (`PROBELAB_KIND_NODE_IMAGE=build`) or on CI with kind's own images. The
lab itself (labs/) proves the pulls through the registry with and without the secret.
"""

import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml
from docker.models.containers import Container
from kubernetes import client

from probelab import kube
from probelab.clusters.base import ClusterHandle
from probelab.clusters.kind import (
    BUILD_HERE,
    KindCluster,
    KindSettings,
    cluster_config,
    node_image,
)
from probelab.clusters.kind_network import CHAIN, KindNetworkGuard
from probelab.docker_engine import docker_client
from probelab.errors import ProbelabError
from probelab.progress import say
from probelab.signals import as_from_a_terminal

# TEST-NET-2: routed towards the default route, answered by nobody (this machine's own
# link is on TEST-NET-1).
OFF_MACHINE = "198.51.100.1"
CONNECT_TIMEOUT = 5
# kind starts the node container seconds after it is called (the image is local); its own
# deletion after an interrupt takes about as long.
NODE_START_TIMEOUT = 60.0
CLEANUP_TIMEOUT = 60.0
# Long enough for kubelet to register and report NetworkPluginNotReady, far shorter than
# the provider's own 120 s.
NOT_READY_TIMEOUT = 20.0


@pytest.fixture(scope="module")
def kind(cluster: ClusterHandle) -> KindCluster:
    if cluster.provider != "kind":
        pytest.skip(f"checks the kind provider; this session runs on {cluster.provider}")
    return KindCluster(KindSettings.from_env())


@pytest.fixture(scope="module")
def engine(kind: KindCluster) -> Iterator[docker.DockerClient]:
    engine = docker_client(None)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def node(kind: KindCluster, engine: docker.DockerClient) -> Container:
    names = kind.nodes()
    assert len(names) == 1, f"one node expected, found {names}"
    return engine.containers.get(names[0])


def _exec(node: Container, *command: str) -> tuple[int, str]:
    code, output = node.exec_run(list(command))
    return int(code), bytes(output or b"").decode(errors="replace")


def test_node_boots_systemd_and_runs_the_servers_version(
    node: Container, kube_api: client.ApiClient
) -> None:
    assert _exec(node, "cat", "/proc/1/comm") == (0, "systemd\n")
    code, version = _exec(node, "cat", "/kind/version")
    assert code == 0
    assert kube.check_reachable(kube_api) == version.strip()
    nodes = client.CoreV1Api(kube_api).list_node().items
    assert [kube.node_is_ready(n) for n in nodes] == [True]


def test_every_pod_image_came_preloaded(node: Container, kube_api: client.ApiClient) -> None:
    """No image of kube-system was pulled: each was in the node image already."""
    events = client.CoreV1Api(kube_api).list_namespaced_event("kube-system").items
    pulled = [e.message for e in events if e.reason == "Pulling"]
    assert pulled == []


def _counter(rule_fragment: str) -> int:
    listing = subprocess.run(
        ["iptables", "-w", "-L", CHAIN, "-v", "-x", "-n"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in listing.splitlines():
        if rule_fragment in line:
            return int(line.split()[0])
    raise AssertionError(f"no {rule_fragment} rule in {CHAIN}:\n{listing}")


@pytest.fixture
def forwarding_on(engine: docker.DockerClient) -> Iterator[str]:
    """Routing on for kind's bridge, as a Docker engine with its own NAT would have it."""
    if os.geteuid() != 0:
        pytest.skip("the guard is an iptables chain; it is installed only as root")
    bridge = KindNetworkGuard(engine).bridge()
    key = Path(f"/proc/sys/net/ipv4/conf/{bridge}/forwarding")
    before = key.read_text().strip()
    key.write_text("1")
    yield bridge
    key.write_text(before)


def test_guard_refuses_traffic_off_the_machine(node: Container, forwarding_on: str) -> None:
    """Refused at once, by a reset: the node's DNS lookups, refused too, use up the ICMP
    errors the kernel may send it (about one a second), so a refusal by ICMP would hang."""
    rejected = _counter("tcp-reset")
    code, output = _exec(
        node,
        "timeout",
        str(CONNECT_TIMEOUT),
        "bash",
        "-c",
        f"exec 3<>/dev/tcp/{OFF_MACHINE}/80",
    )
    assert code != 0, f"a node reached {OFF_MACHINE}: {output}"
    assert code != 124, "the connection hung instead of being refused by the guard"
    assert "Connection refused" in output
    assert _counter("tcp-reset") > rejected, "the refusal did not come from the guard"


def test_guard_lets_the_node_reach_the_registry(kind: KindCluster, node: Container) -> None:
    registry = kind.settings.registry
    code, output = _exec(
        node,
        "timeout",
        str(CONNECT_TIMEOUT),
        "bash",
        "-c",
        f"exec 3<>/dev/tcp/{registry.name}/5000",
    )
    assert code == 0, f"the node cannot reach {registry.node_endpoint}: {output}"


# -- failures: a fresh cluster of the test's own, next to the session's -----------------


@pytest.fixture
def own_cluster(kind: KindCluster) -> Iterator[KindCluster]:
    """A cluster of its own name next to the session's. It shares the session's registry
    container (one per engine) and so its state: a state folder of its own has no password
    file for that registry, which the registry refuses."""
    settings = dataclasses.replace(kind.settings, name=f"probelab-t{uuid.uuid4().hex[:6]}")
    own = KindCluster(settings)
    yield own
    if own.exists():
        own.delete()


def _node_started(engine: docker.DockerClient, name: str, timeout: float) -> bool:
    """Watch the engine's events until a node container of cluster `name` starts."""
    until = time.time() + timeout
    label = f"io.x-k8s.kind.cluster={name}"
    filters = {"type": "container", "event": "start", "label": label}
    return any(True for _ in engine.events(decode=True, filters=filters, until=int(until)))


def test_ctrl_c_during_kind_create_leaves_no_partial_cluster(
    own_cluster: KindCluster, engine: docker.DockerClient
) -> None:
    name = own_cluster.settings.name
    env = {
        **os.environ,
        "PROBELAB_KIND_CLUSTER": name,
        "PROBELAB_KIND_HOME": str(own_cluster.settings.registry.state_dir),
    }
    child = subprocess.Popen(
        [sys.executable, "-c", "from probelab.clusters import kind; kind.bring_up()"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_from_a_terminal,  # Ctrl-C as a student's terminal delivers it
    )
    try:
        assert _node_started(engine, name, NODE_START_TIMEOUT), "kind never started a node"
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=CLEANUP_TIMEOUT)
    finally:
        child.kill()
    assert child.returncode != 0
    assert "KeyboardInterrupt" in stderr
    label = f"io.x-k8s.kind.cluster={name}"
    assert engine.containers.list(all=True, filters={"label": label}) == []
    assert not own_cluster.exists()


def test_a_node_never_ready_fails_with_kinds_logs(own_cluster: KindCluster) -> None:
    """No CNI config where containerd looks: kubelet stays NotReady (NetworkPluginNotReady)."""
    broken = yaml.safe_load(cluster_config(None))
    broken["containerdConfigPatches"].append(
        '[plugins."io.containerd.grpc.v1.cri".cni]\n  conf_dir = "/etc/cni/none"\n'
    )
    config = yaml.safe_dump(broken)
    if own_cluster.settings.node_image == BUILD_HERE:
        chosen, built = node_image(own_cluster.settings)
        own_cluster.settings = chosen
        made = yaml.safe_load(cluster_config(built))
        made["containerdConfigPatches"] = broken["containerdConfigPatches"]
        config = yaml.safe_dump(made)
    say("test_a_node_never_ready_fails_with_kinds_logs: this node gets no CNI config, on "
        "purpose; the failed wait for it to be Ready that follows is expected")  # fmt: skip
    own_cluster.create(config, wait="0s")
    api = kube.api_client(own_cluster.write_kubeconfig(), own_cluster.settings.context)
    try:
        with pytest.raises(ProbelabError) as failure:
            own_cluster.wait_node_ready(api, timeout=NOT_READY_TIMEOUT)
    finally:
        api.close()
    message = str(failure.value)
    assert "Ready" in message
    assert f"kind's logs are in {own_cluster.settings.registry.state_dir}" in message
    assert "kubelet.log" in message
