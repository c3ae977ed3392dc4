"""What of the kind provider runs here, run for real.

kind itself cannot start on this machine (no node image is reachable), so these tests take
the provider's parts one at a time to the real things that are here:

- the KEP-1755 ConfigMap is written and read back through the local cluster's API server
  (under a name of the test's own in `kube-public`, removed afterwards);
- the registry container is started by the provider's own code on the local Docker engine,
  from a stand-in for `registry:3` built here from Debian's distribution registry (the
  engine has no bridge, so the container uses the host network on a free loopback port);
  the lab's real build-and-push then goes through it with the provider's credentials,
  while an anonymous request is refused;
- the node wiring (`hosts.toml` in each node) is written into a stand-in node container.

Only CI (GitHub's runners, where kind works) exercises `kind create cluster`, the `kind`
network and pulls by kubelet inside kind nodes.
"""

import base64
import fcntl
import json
import os
import socket
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
from docker.models.containers import Container
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from probelab.clusters.base import ClusterHandle
from probelab.clusters.kind_node.standins import ensure_registry_standin
from probelab.clusters.local.images import BASE_IMAGE
from probelab.docker_engine import docker_client
from probelab.errors import ProbelabError
from probelab.images import build_and_push
from probelab.registries.ecr_mapping import unless_a_session_runs
from probelab.registries.kind import (
    HOSTING_KEY,
    HOSTING_NAMESPACE,
    KindRegistryServer,
    KindRegistrySettings,
    LocalRegistryHosting,
    document_hosting,
    node_hosts_toml,
    read_hosting,
)


@pytest.fixture(scope="module")
def engine(cluster: ClusterHandle) -> Iterator[docker.DockerClient]:
    if cluster.provider != "local":
        pytest.skip(f"stands in for kind on the local engine; this session runs {cluster.provider}")
    engine = docker_client(cluster.docker_host)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def standin_image(engine: docker.DockerClient) -> str:
    """`registry:3` as far as the provider can tell: the stand-in kind uses where it is made."""
    return ensure_registry_standin(engine)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server(
    engine: docker.DockerClient, standin_image: str, tmp_path: Path
) -> Iterator[KindRegistryServer]:
    settings = KindRegistrySettings(
        name=f"probelab-test-registry-{uuid.uuid4().hex[:6]}",
        port=_free_port(),
        image=standin_image,
        network="host",
        state_dir=tmp_path,
    )
    server = KindRegistryServer(engine, settings)
    yield server
    server.remove()


def _get(url: str, creds: tuple[str, str] | None = None) -> int:
    request = urllib.request.Request(url)
    if creds:
        token = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_registry_refuses_anonymous_and_takes_the_lab_push(
    server: KindRegistryServer, engine: docker.DockerClient, tmp_path: Path
) -> None:
    assert server.ensure() is True
    container = server.container()
    assert container is not None and container.status in ("created", "running")
    assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"
    assert (server.settings.credentials_file.stat().st_mode & 0o777) == 0o600

    registry = server.registry()
    assert registry.host == f"localhost:{server.settings.port}"
    creds = registry.credentials()
    base = f"http://127.0.0.1:{server.settings.port}/v2"
    assert _get(f"{base}/") == 401
    assert _get(f"{base}/", ("probelab", "wrong-password")) == 401
    assert _get(f"{base}/", (creds.username, creds.password)) == 200

    context = tmp_path / "app"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nLABEL probelab.test=kind\n")
    reference = build_and_push(engine, context, registry)
    engine.images.remove(reference)  # the registry has it; keep the engine's store clean
    repository, tag = reference.rsplit(":", 1)
    assert repository == f"localhost:{server.settings.port}/fastapi-health"
    manifest = f"{base}/fastapi-health/manifests/{tag}"
    assert _get(manifest) == 401
    assert _get(manifest, (creds.username, creds.password)) == 200
    # The pull secret kubelet would get names the same host the image reference does.
    auths = json.loads(registry.docker_config_json())["auths"]
    assert set(auths) == {registry.host}


def test_second_ensure_reuses_the_running_registry(server: KindRegistryServer) -> None:
    assert server.ensure() is True
    first = server.container()
    assert first is not None
    assert server.ensure() is False
    again = server.container()
    assert again is not None and again.id == first.id


def test_a_killed_stand_in_sessions_user_is_forgotten_when_none_runs(
    server: KindRegistryServer, tmp_path: Path
) -> None:
    """The ECR stand-in adds its token's user; a SIGKILLed session never removes it."""
    assert server.ensure() is True
    own = server.registry().credentials()
    server.set_user("AWS", "token-of-a-killed-session")
    base = f"http://127.0.0.1:{server.settings.port}/v2/"
    assert _get(base, ("AWS", "token-of-a-killed-session")) == 200
    lock = tmp_path / "stand-in.lock"
    held = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:  # a session runs: its user stays
        assert unless_a_session_runs(server.forget_other_users, lock) is False
    finally:
        os.close(held)
    assert _get(base, ("AWS", "token-of-a-killed-session")) == 200
    assert unless_a_session_runs(server.forget_other_users, lock) is True
    assert _get(base, ("AWS", "token-of-a-killed-session")) == 401
    assert _get(base, (own.username, own.password)) == 200


def test_a_foreign_container_under_the_name_is_left_alone(
    server: KindRegistryServer, engine: docker.DockerClient, standin_image: str
) -> None:
    foreign = engine.containers.create(standin_image, name=server.settings.name)
    try:
        with pytest.raises(ProbelabError, match="not probelab's registry"):
            server.ensure()
        assert engine.containers.get(server.settings.name).id == foreign.id
    finally:
        foreign.remove(force=True)


def test_a_registry_that_cannot_start_is_removed_with_its_logs(
    engine: docker.DockerClient, tmp_path: Path
) -> None:
    """An image that exits at once (plain Python with no program) in place of the registry."""
    settings = KindRegistrySettings(
        name=f"probelab-test-registry-{uuid.uuid4().hex[:6]}",
        port=_free_port(),
        image=BASE_IMAGE,
        network="host",
        state_dir=tmp_path,
    )
    server = KindRegistryServer(engine, settings)
    with pytest.raises(ProbelabError, match="registry container exited"):
        server.ensure()
    assert server.container() is None


@pytest.fixture
def node(engine: docker.DockerClient) -> Iterator[Container]:
    """A container standing in for a kind node: only its filesystem matters here."""
    container = engine.containers.run(
        BASE_IMAGE,
        ["python3", "-c", "import signal; signal.pause()"],
        name=f"probelab-test-node-{uuid.uuid4().hex[:6]}",
        network_mode="host",
        detach=True,
    )
    yield container
    container.remove(force=True)


def test_nodes_send_the_registry_host_to_the_container(
    server: KindRegistryServer, node: Container
) -> None:
    server.configure_nodes([str(node.name)])
    path = f"/etc/containerd/certs.d/localhost:{server.settings.port}/hosts.toml"
    result = node.exec_run(["cat", path])
    assert result.exit_code == 0, result.output
    written = result.output.decode()
    assert written == node_hosts_toml(server.settings.node_endpoint)
    assert f'[host."http://{server.settings.name}:5000"]' in written


@pytest.fixture
def configmap_name(kube_api: client.ApiClient) -> Iterator[str]:
    name = f"probelab-test-hosting-{uuid.uuid4().hex[:6]}"
    yield name
    try:
        client.CoreV1Api(kube_api).delete_namespaced_config_map(name, HOSTING_NAMESPACE)
    except ApiException as error:
        if error.status != 404:
            raise


def test_hosting_configmap_round_trips_through_the_api_server(
    kube_api: client.ApiClient, configmap_name: str
) -> None:
    assert read_hosting(kube_api, name=configmap_name) is None
    hosting = LocalRegistryHosting(
        host="localhost:5001",
        host_from_cluster_network="kind-registry:5000",
        help="https://kind.sigs.k8s.io/docs/user/local-registry/",
    )
    document_hosting(kube_api, hosting, name=configmap_name)
    assert read_hosting(kube_api, name=configmap_name) == hosting


def test_hosting_written_by_kind_action_is_read(
    kube_api: client.ApiClient, configmap_name: str
) -> None:
    """The document exactly as helm/kind-action's registry script writes it."""
    text = (
        'host: "kind-registry:5000"\n'
        'hostFromClusterNetwork: "kind-registry:5000"\n'
        'help: "https://kind.sigs.k8s.io/docs/user/local-registry/"\n'
    )
    body = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=configmap_name, namespace=HOSTING_NAMESPACE),
        data={HOSTING_KEY: text},
    )
    client.CoreV1Api(kube_api).create_namespaced_config_map(HOSTING_NAMESPACE, body)
    hosting = read_hosting(kube_api, name=configmap_name)
    assert hosting is not None
    assert hosting.host == "kind-registry:5000"
    assert hosting.host_from_cluster_network == "kind-registry:5000"
    assert hosting.host_from_container_runtime is None
