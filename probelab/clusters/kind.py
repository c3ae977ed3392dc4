"""kind clusters: create or reuse a named cluster with the `kind` already on PATH.

One small class around the kind CLI, as pytest-kind has, but not pytest-kind itself (nor
its maintained fork pytest-kind-ng): that plugin registers `--keep-cluster` and
`--kubeconfig` too, so merely installing it stops every pytest run here with a clash of
options; it downloads kind and kubectl from the internet when no path is given; it brings a
second Kubernetes client (pykube-ng); and it deletes a cluster it merely reused.

Settings come from the environment so that CI can choose them per matrix entry:
`PROBELAB_KIND_CLUSTER` (name, default `probelab`), `PROBELAB_KIND_NODE_IMAGE` (default:
the image this kind release defaults to; `build` makes one here, see `kind_node`). A
cluster that already exists under the name is reused and never deleted; one created here
is deleted at the end unless `--keep-cluster`, and also when its creation fails or is
interrupted. kind only warns when the node is not Ready in time, so probelab waits for it
itself and fails with the tail of kind's own logs. The kubeconfig is written to probelab's
own state directory, never merged into `~/.kube/config`. Without a `kind` on PATH, the
version CI pins is built from the Go module proxy and cached.
"""

import dataclasses
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import docker
import yaml
from kubernetes import client

from probelab import kube
from probelab.clusters.base import ClusterHandle
from probelab.clusters.kind_network import KindNetworkGuard
from probelab.clusters.kind_node.build import KIND_VERSION, NodeImage, NodeImageBuilder
from probelab.clusters.kind_node.components import OWN_REPOSITORY
from probelab.clusters.kind_node.layout import POD_SUBNET
from probelab.clusters.kind_node.standins import ensure_registry_standin
from probelab.clusters.local.build import Builder
from probelab.clusters.local.config import LocalClusterConfig
from probelab.clusters.local.images import ensure_base_image
from probelab.clusters.local.releases import DEFAULT_KUBERNETES, Request, parse
from probelab.docker_engine import docker_client
from probelab.errors import ProbelabError
from probelab.progress import say, step
from probelab.registries.kind import (
    REGISTRY_IMAGE_ENV,
    KindRegistryServer,
    KindRegistrySettings,
    KindStandInStore,
    provide,
)

DEFAULT_NAME = "probelab"
WAIT_FOR_CONTROL_PLANE = "120s"
NODE_READY_TIMEOUT = 120.0
BUILD_HERE = "build"
INSTALL_HELP = "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
LOG_TAIL_LINES = 25
# Node images from kind v0.27 on read registry hosts from /etc/containerd/certs.d already;
# older ones need this patch for the registry's hosts.toml to count (kind's own recipe).
REGISTRY_PATCH = """\
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
"""
# kind never sets failCgroupV1, and kubelet 1.35+ refuses to start on a cgroup v1 host
# without it. Image pulls in parallel, as on the local cluster: kubelet serializes them by
# default, and the lab's scenarios all pull at once, so the last would wait for the others
# longer than any of its deadlines allows.
KUBELET_PATCH = "kind: KubeletConfiguration\nfailCgroupV1: false\nserializeImagePulls: false\n"

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def kind_binary(cache: Path | None = None) -> str:
    """The `kind` on PATH, else kind `KIND_VERSION` built from the Go module proxy."""
    found = shutil.which("kind")
    if found is not None:
        return found
    if shutil.which("go") is None:
        raise ProbelabError(
            f"kind is not on PATH, and Go is not either to build it; install kind "
            f"({INSTALL_HELP}) or Go 1.25+, or use --cluster=local"
        )
    cache = cache or LocalClusterConfig().cache
    return str(Builder(cache / "build").kind(KIND_VERSION))


def cluster_config(built: NodeImage | None = None) -> str:
    """kind's cluster config: the registry and cgroup patches, and what a node made here needs.

    A node made here has no kindnetd (a CNI config is baked in instead) and carries etcd
    and CoreDNS under their own versions, so kubeadm is told their image names.
    """
    document: dict[str, object] = {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "containerdConfigPatches": [REGISTRY_PATCH],
        "kubeadmConfigPatches": [KUBELET_PATCH],
    }
    if built is not None:
        versions = built.components
        images = {
            "kind": "ClusterConfiguration",
            "etcd": {"local": {"imageRepository": OWN_REPOSITORY, "imageTag": versions.etcd}},
            "dns": {"imageRepository": OWN_REPOSITORY, "imageTag": versions.coredns},
        }
        document["kubeadmConfigPatches"] = [KUBELET_PATCH, yaml.safe_dump(images)]
        document["networking"] = {"disableDefaultCNI": True, "podSubnet": POD_SUBNET}
    return yaml.safe_dump(document, sort_keys=False)


@dataclass(frozen=True)
class KindSettings:
    name: str = DEFAULT_NAME
    node_image: str | None = None
    registry: KindRegistrySettings = field(default_factory=KindRegistrySettings)

    @classmethod
    def from_env(cls) -> "KindSettings":
        return cls(
            name=os.environ.get("PROBELAB_KIND_CLUSTER") or DEFAULT_NAME,
            node_image=os.environ.get("PROBELAB_KIND_NODE_IMAGE") or None,
            registry=KindRegistrySettings.from_env(),
        )

    @property
    def context(self) -> str:
        """The context name kind gives a cluster's kubeconfig."""
        return f"kind-{self.name}"

    @property
    def kubeconfig(self) -> Path:
        return self.registry.state_dir / f"{self.name}.kubeconfig"


def create_command(
    kind: str, settings: KindSettings, wait: str = WAIT_FOR_CONTROL_PLANE
) -> list[str]:
    """`kind create cluster` for these settings; the config is read from stdin."""
    command = [
        kind,
        "create",
        "cluster",
        f"--name={settings.name}",
        f"--kubeconfig={settings.kubeconfig}",
        f"--wait={wait}",
        "--config=-",
    ]
    if settings.node_image:
        command.append(f"--image={settings.node_image}")
    return command


def cluster_names(output: str) -> list[str]:
    """The names `kind get clusters` prints (it says "No kind clusters found." on stderr)."""
    return [line.strip() for line in output.splitlines() if line.strip()]


class KindCluster:
    """One named kind cluster, driven through the kind CLI."""

    provider = "kind"

    def __init__(
        self, settings: KindSettings, *, kind: str | None = None, run: Runner = subprocess.run
    ) -> None:
        self.settings = settings
        self.kind = kind or kind_binary()
        self._run = run

    def _kind(self, *args: str, stdin: str | None = None) -> str:
        command = [self.kind, *args]
        result = self._run(command, input=stdin, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ProbelabError(f"`{' '.join(command)}` failed: {result.stderr.strip()}")
        return result.stdout

    def exists(self) -> bool:
        return self.settings.name in cluster_names(self._kind("get", "clusters"))

    def nodes(self) -> list[str]:
        return cluster_names(self._kind("get", "nodes", f"--name={self.settings.name}"))

    def write_kubeconfig(self, path: Path | None = None) -> Path:
        """The cluster's kubeconfig, written 0600 (by default to probelab's state directory)."""
        text = self._kind("get", "kubeconfig", f"--name={self.settings.name}")
        path = path or self.settings.kubeconfig
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(text)
        return path

    def create(self, config: str, wait: str = WAIT_FOR_CONTROL_PLANE) -> None:
        with step(f"creating kind cluster {self.settings.name}"):
            self._kind(*create_command(self.kind, self.settings, wait)[1:], stdin=config)

    def wait_node_ready(self, api: client.ApiClient, timeout: float = NODE_READY_TIMEOUT) -> None:
        """Every node Ready, or an error with the tail of kind's logs (kind only warns)."""
        names = set(self.nodes())
        with step(f"waiting for kind node(s) {', '.join(sorted(names))} to be Ready"):
            try:
                kube.wait_nodes_ready(api, names, timeout=timeout)
            except AssertionError as error:
                raise ProbelabError(f"{error}\n{self.log_tail()}") from error

    def log_tail(self) -> str:
        """kind's own logs (`kind export logs`), saved for later, and kubelet's last lines."""
        where = self.settings.registry.state_dir / "logs" / self.settings.name
        shutil.rmtree(where, ignore_errors=True)
        try:
            self._kind("export", "logs", str(where), f"--name={self.settings.name}")
        except ProbelabError as error:
            return f"(kind export logs failed: {error})"
        parts = [f"kind's logs are in {where}"]
        for log in sorted(where.glob("*/kubelet.log")):
            lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            parts.append(f"last lines of {log}:\n" + "\n".join(lines))
        return "\n".join(parts)

    def delete(self) -> None:
        self._kind("delete", "cluster", f"--name={self.settings.name}")
        self.settings.kubeconfig.unlink(missing_ok=True)

    def ensure(self, undo: list[Callable[[], None]], config: Callable[[], str]) -> bool:
        """Create the cluster unless it exists; True when this call created it.

        The deletion is registered before `kind create` starts, so a create that fails or
        is interrupted half-way leaves no node container behind either.
        """
        if self.exists():
            say(f"kind cluster {self.settings.name} exists; reusing it (it will be kept)")
            return False
        text = config()
        undo.append(self.delete)
        self.create(text)
        return True


def node_image(
    settings: KindSettings, request: Request | None = None
) -> tuple[KindSettings, NodeImage | None]:
    """The settings with the node image to use; `build` makes one here first."""
    if settings.node_image != BUILD_HERE:
        return settings, None
    engine = docker_client(None)
    cache = LocalClusterConfig().cache
    try:
        builder = NodeImageBuilder(engine, cache)
        versions = builder.builder.versions(request or parse(DEFAULT_KUBERNETES))
        built = builder.build(versions)
        # Nothing else can be pulled either: the lab's base image and the registry's.
        ensure_base_image(engine, cache / "images")
        registry = registry_made_here(settings.registry, engine)
    finally:
        engine.close()
    return KindSettings(settings.name, built.reference, registry), built


def registry_made_here(
    registry: KindRegistrySettings, engine: docker.DockerClient
) -> KindRegistrySettings:
    """The recipe registry where nothing can be pulled: Debian's registry as its image.

    On kind's own network from the start: an engine made for kind here has no default
    bridge to run it on first. Used for a reused cluster too, whose registry container may
    be gone (otherwise its re-creation would try to pull `registry:3`).
    """
    registry = dataclasses.replace(registry, network=registry.cluster_network)
    if REGISTRY_IMAGE_ENV not in os.environ:
        registry = dataclasses.replace(registry, image=ensure_registry_standin(engine))
    return registry


def check_version_request(settings: KindSettings, request: Request | None) -> None:
    """A Kubernetes version can be chosen only for a node image made here."""
    if request is not None and settings.node_image != BUILD_HERE:
        raise ProbelabError(
            f"--kubernetes-version on kind needs PROBELAB_KIND_NODE_IMAGE={BUILD_HERE} (a node "
            "image made here); otherwise the node image decides the version"
        )


def bring_up(
    settings: KindSettings | None = None, request: Request | None = None
) -> tuple[ClusterHandle, Callable[[], None]]:
    """A kind cluster with its registry, and the teardown of what this call created."""
    settings = settings or KindSettings.from_env()
    check_version_request(settings, request)
    cluster = KindCluster(settings)
    undo: list[Callable[[], None]] = []

    def teardown() -> None:
        while undo:
            undo.pop()()

    def config() -> str:
        chosen, built = node_image(settings, request)
        cluster.settings = chosen
        guard_network(undo)
        return cluster_config(built)

    try:
        owned = cluster.ensure(undo, config)
        if not owned:
            if settings.node_image == BUILD_HERE:
                cluster.settings = dataclasses.replace(
                    settings, registry=_reused_registry(settings.registry)
                )
            guard_network(undo)
        handle = _with_registry(cluster, undo, owned=owned)
    except BaseException:  # Ctrl-C too: leave nothing this call started behind
        teardown()
        raise
    return handle, teardown


def _with_registry(
    cluster: KindCluster, undo: list[Callable[[], None]], *, owned: bool
) -> ClusterHandle:
    """The handle of a running cluster, its registry started and wired when needed."""
    settings = cluster.settings
    kubeconfig = cluster.write_kubeconfig()
    api = kube.api_client(kubeconfig, settings.context)
    try:
        cluster.wait_node_ready(api)
        engine = docker_client(None)
    except BaseException:
        api.close()
        raise
    nodes = cluster.nodes()
    try:
        server = KindRegistryServer(engine, settings.registry)
        registry, created = provide(api, server, nodes)
    finally:
        api.close()
        engine.close()
    if created:
        undo.append(lambda: _remove_registry(settings.registry))
    own = registry.host == settings.registry.host  # not a registry someone else documented
    return ClusterHandle(
        provider=KindCluster.provider,
        kubeconfig=kubeconfig,
        context=settings.context,
        owned=owned,
        registry=registry,
        stand_in_store=(
            KindStandInStore(settings.registry, nodes, lambda: docker_client(None)) if own else None
        ),
    )


def guard_network(undo: list[Callable[[], None]]) -> None:
    """Keep kind's network home (creating it first if missing); undo what this added."""
    if os.geteuid() != 0:
        say("not root: kind's Docker network is left unguarded (the guard is an iptables chain)")
        return
    engine = docker_client(None)
    guard = KindNetworkGuard(engine)
    if guard.installed():
        engine.close()
        return
    created = guard.ensure_network()

    def remove() -> None:
        try:
            guard.remove(network=created)
        finally:
            engine.close()

    undo.append(remove)
    guard.install()


def _reused_registry(registry: KindRegistrySettings) -> KindRegistrySettings:
    engine = docker_client(None)
    try:
        return registry_made_here(registry, engine)
    finally:
        engine.close()


def _remove_registry(settings: KindRegistrySettings) -> None:
    engine = docker_client(None)
    try:
        KindRegistryServer(engine, settings).remove()
    finally:
        engine.close()
