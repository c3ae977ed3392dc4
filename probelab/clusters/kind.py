"""kind clusters: create or reuse a named cluster with the `kind` already on PATH.

One small class around the kind CLI, as pytest-kind has, but not pytest-kind itself (nor
its maintained fork pytest-kind-ng): that plugin registers `--keep-cluster` and
`--kubeconfig` too, so merely installing it stops every pytest run here with a clash of
options; it downloads kind and kubectl from the internet when no path is given; it brings a
second Kubernetes client (pykube-ng); and it deletes a cluster it merely reused.

Settings come from the environment so that CI can choose them per matrix entry:
`PROBELAB_KIND_CLUSTER` (name, default `probelab`), `PROBELAB_KIND_NODE_IMAGE` (default:
the image this kind release defaults to). A cluster that already exists under the name is
reused and never deleted; one created here is deleted at the end unless `--keep-cluster`.
The kubeconfig is written to probelab's own state directory, never merged into
`~/.kube/config`.
"""

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from probelab import kube
from probelab.clusters.base import ClusterHandle
from probelab.errors import ProbelabError
from probelab.images import docker_client
from probelab.progress import say, step
from probelab.registries.kind import KindRegistryServer, KindRegistrySettings, provide

DEFAULT_NAME = "probelab"
WAIT_FOR_CONTROL_PLANE = "120s"
INSTALL_HELP = "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
# Node images from kind v0.27 on read registry hosts from /etc/containerd/certs.d already;
# older ones need this patch for the registry's hosts.toml to count (kind's own recipe).
CLUSTER_CONFIG = """\
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
containerdConfigPatches:
- |-
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/etc/containerd/certs.d"
"""

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def kind_binary() -> str:
    """The `kind` on PATH, or a ProbelabError that says how to get one."""
    found = shutil.which("kind")
    if found is None:
        raise ProbelabError(
            f"kind is not on PATH; install it ({INSTALL_HELP}) or use --cluster=local"
        )
    return found


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


def create_command(kind: str, settings: KindSettings) -> list[str]:
    """`kind create cluster` for these settings; the config is read from stdin."""
    command = [
        kind,
        "create",
        "cluster",
        f"--name={settings.name}",
        f"--kubeconfig={settings.kubeconfig}",
        f"--wait={WAIT_FOR_CONTROL_PLANE}",
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

    def create(self) -> None:
        with step(f"creating kind cluster {self.settings.name}"):
            self._kind(*create_command(self.kind, self.settings)[1:], stdin=CLUSTER_CONFIG)

    def delete(self) -> None:
        self._kind("delete", "cluster", f"--name={self.settings.name}")
        self.settings.kubeconfig.unlink(missing_ok=True)

    def ensure(self) -> bool:
        """Create the cluster unless it exists; True when this call created it."""
        if self.exists():
            say(f"kind cluster {self.settings.name} exists; reusing it (it will be kept)")
            return False
        self.create()
        return True


def bring_up(settings: KindSettings | None = None) -> tuple[ClusterHandle, Callable[[], None]]:
    """A kind cluster with its registry, and the teardown of what this call created."""
    settings = settings or KindSettings.from_env()
    cluster = KindCluster(settings)
    undo: list[Callable[[], None]] = []

    def teardown() -> None:
        while undo:
            undo.pop()()

    owned = cluster.ensure()
    if owned:
        undo.append(cluster.delete)
    try:
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
    engine = docker_client(None)
    try:
        server = KindRegistryServer(engine, settings.registry)
        registry, created = provide(api, server, cluster.nodes())
    finally:
        api.close()
        engine.close()
    if created:
        undo.append(lambda: _remove_registry(settings.registry))
    return ClusterHandle(
        provider=KindCluster.provider,
        kubeconfig=kubeconfig,
        context=settings.context,
        owned=owned,
        registry=registry,
    )


def _remove_registry(settings: KindRegistrySettings) -> None:
    engine = docker_client(None)
    try:
        KindRegistryServer(engine, settings).remove()
    finally:
        engine.close()
