"""`probelab cluster up | down | status`: upstream Kubernetes as host processes.

`up` builds (or finds cached) binaries, makes certificates, the pod bridge and its guard,
then starts each component and waits for it to be ready before starting the next:
etcd, kube-apiserver, the controller manager and scheduler, containerd, a Docker engine, the
TLS registry, kubelet (until the node is Ready), kube-proxy and CoreDNS. If anything fails
or the user presses Ctrl-C, everything this `up` started is stopped again before the error
is reported. `up` on a running cluster checks it and returns, unless another Kubernetes
version is asked for: then the new binaries are built first, while the old cluster still
runs, and the old cluster is replaced (down, then up) with an empty etcd, since etcd data
written by one release is not promised to be readable by an older etcd or API server.

`down` deletes the pods first, so kubelet itself tears down their sandboxes, network and
mounts; then it stops each process by its PID file, removes kube-proxy's and our iptables
rules, the bridge, the registry trust files, and unmounts anything left under the state
directory.
"""

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import docker
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from probelab import kube, runs
from probelab.alongside import alongside
from probelab.cleanup import Cleanup
from probelab.clusters.base import ClusterHandle
from probelab.clusters.local import preflight
from probelab.clusters.local.build import Binaries, Builder
from probelab.clusters.local.components import Component, Components
from probelab.clusters.local.config import LocalClusterConfig
from probelab.clusters.local.images import base_rootfs, ensure_base_image, import_pause_image
from probelab.clusters.local.network import PodNetwork
from probelab.clusters.local.pki import PkiLayout, ensure_pki
from probelab.clusters.local.processes import Supervisor
from probelab.clusters.local.registry_server import LocalRegistryServer
from probelab.clusters.local.releases import DEFAULT_KUBERNETES, Request, Versions, parse
from probelab.clusters.mounts import unmount_below
from probelab.errors import ProbelabError
from probelab.i18n import _
from probelab.progress import say, step
from probelab.registries.local import LocalRegistry

# Start order; `down` goes the other way.
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "containerd",
    "dockerd",
    "registry",
    "kubelet",
    "kube-proxy",
    "coredns",
)
NODE_READY_TIMEOUT = 120.0
POD_DRAIN_TIMEOUT = 60.0


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None
    log: Path


class LocalCluster:
    """One local cluster, described by its config and state directory."""

    provider = "local"

    def __init__(self, config: LocalClusterConfig | None = None) -> None:
        self.config = config or LocalClusterConfig()
        self.layout = self.config.layout
        self.supervisor = Supervisor(self.layout.run, self.layout.logs)
        self.network = PodNetwork(self.config)
        self._started: list[str] = []  # by the current `up`, in start order

    # -- what users and the plugin call -------------------------------------------------

    def handle(self, *, owned: bool) -> ClusterHandle:
        return ClusterHandle(
            provider=self.provider,
            kubeconfig=self.layout.kubeconfig,
            context=self.config.context,
            owned=owned,
            registry=self.registry(),
            docker_host=f"unix://{self.layout.docker_socket}",
            stand_in_store=self.registry_server(None),
        )

    def registry(self) -> LocalRegistry:
        return LocalRegistry(
            self.config.registry_host, self.layout.etc / "registry" / "credentials.json"
        )

    @property
    def runtime_log(self) -> Path:
        """containerd's log: every CRI call kubelet made, with exact times."""
        return self.supervisor.log_file("containerd")

    @property
    def kubelet_log(self) -> Path:
        """kubelet's log: every failed probe, with exact times (`kubelet_log`)."""
        return self.supervisor.log_file("kubelet")

    def is_up(self) -> bool:
        """Every component runs and the API server answers."""
        if not all(self.supervisor.is_running(name) for name in COMPONENTS):
            return False
        api = kube.api_client(self.layout.kubeconfig, self.config.context)
        try:
            kube.check_reachable(api)
        except ProbelabError:
            return False
        finally:
            api.close()
        return True

    def last_versions(self) -> Versions | None:
        """What the last successful `up` started (it may have been stopped since)."""
        try:
            return Versions(**json.loads(self.layout.state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def builder(self) -> Builder:
        return Builder(self.config.cache / "build")

    def resolve(self, request: Request | None) -> Versions:
        """The exact release (and its etcd and CoreDNS) a request means; default if none."""
        return self.builder().versions(request or parse(DEFAULT_KUBERNETES))

    def build(self, request: Request | None = None) -> tuple[Versions, Binaries]:
        """Build (or find cached) everything `up` runs; touches no cluster."""
        versions = self.resolve(request)
        return versions, self._binaries(versions)

    def _binaries(self, versions: Versions) -> Binaries:
        """The Go builds (`Builder.all`: etcd, CoreDNS and pause beside Kubernetes), and the
        base image's root made alongside them all (`alongside`)."""
        with alongside(partial(base_rootfs, self.config.cache / "images")):
            return self.builder().all(versions)

    def up(self, request: Request | None = None) -> ClusterHandle:
        """The running cluster, or one at `request` (none asked: whatever runs, else the
        default); asking for another version than the running one replaces it."""
        if self.is_up():
            running = self.last_versions()
            what = running.describe() if running else "an unrecorded version"
            versions = self.resolve(request) if request is not None else None
            if versions is None or (running and running.kubernetes == versions.kubernetes):
                say(f"local cluster already up: {what} (state in {self.layout.root})")
                return self.handle(owned=False)
            binaries = self._binaries(versions)  # the old cluster runs on meanwhile
            say(
                _(
                    "the local cluster runs {running}; replacing it with Kubernetes "
                    "{version} (down, then up)"
                ).format(running=what, version=versions.kubernetes)
            )
            self.down()
        else:
            versions, binaries = self.build(request)
        preflight.check(self.config, self.supervisor)
        healthy = [name for name in COMPONENTS if self.supervisor.is_running(name)]
        self._started = []
        try:
            self._up(versions, binaries)
        except BaseException:  # Ctrl-C too: leave nothing half-started behind
            say("bringing the local cluster up failed; stopping what was started")
            try:
                if healthy:  # a cluster with pods on it: never stop what was already running
                    self._stop_started()
                else:
                    self.down(quiet=True)
            except Exception as cleanup_error:  # the first error is the one to report
                say(_("warning: {error}").format(error=cleanup_error))
            raise
        say(
            f"local cluster up: {versions.describe()}; KUBECONFIG={self.layout.kubeconfig} "
            f"(state in {self.layout.root})"
        )
        return self.handle(owned=True)

    def down(self, *, quiet: bool = False) -> None:
        """Stop everything `up` started. Every step runs even when one before it failed;
        the failures are raised together at the end (a `CleanupError`)."""
        cleanup = Cleanup(_("stopping the local cluster"))
        with step("stopping the local cluster") if not quiet else _nothing():
            cleanup.run(_("deleting the pods"), self._drain_pods)
            for name in reversed(COMPONENTS):
                cleanup.run(
                    _("stopping {name}").format(name=name), partial(self.supervisor.stop, name)
                )
            cleanup.run("kube-proxy --cleanup", self._kube_proxy_cleanup)
            cleanup.run(_("removing the pod network"), self.network.down)
            cleanup.run(_("removing the registry trust"), self.registry_server(None).untrust)
            cleanup.run(_("unmounting"), lambda: unmount_below(self.layout.root))
        cleanup.check()

    def _stop_started(self) -> None:
        """Stop only the components this `up` started, newest first."""
        cleanup = Cleanup(_("stopping what this up started"))
        for name in reversed(self._started):
            cleanup.run(_("stopping {name}").format(name=name), partial(self.supervisor.stop, name))
        cleanup.check()

    def _kube_proxy_cleanup(self) -> None:
        """kube-proxy removes every iptables rule it wrote."""
        kube_proxy = self.layout.bin / "kube-proxy"
        if kube_proxy.exists():
            subprocess.run([str(kube_proxy), "--cleanup"], capture_output=True, check=False)

    def status(self) -> list[ComponentStatus]:
        statuses = []
        for name in COMPONENTS:
            record = self.supervisor.record(name)
            statuses.append(
                ComponentStatus(
                    name, record.pid if record else None, self.supervisor.log_file(name)
                )
            )
        return statuses

    # -- up, step by step ---------------------------------------------------------------

    def _up(self, versions: Versions, binaries: Binaries) -> None:
        self.layout.make()
        self._fresh_etcd_if_changed(versions)
        self._link_binaries(binaries)
        pki = self._pki()
        components = Components(self.config, binaries, pki)
        self.network.up()
        for component in (components.etcd(), components.apiserver()):
            self._start(component)
        api = kube.api_client(self.layout.kubeconfig, self.config.context)
        self._grant_coredns(api)
        # Drop namespaces of runs that were killed before kubelet restarts their pods; a
        # run still going (the API server was only restarted) keeps its own.
        runs.sweep(api, before=datetime.now(UTC))
        for component in (
            components.controller_manager(),
            components.scheduler(),
            components.containerd(),
            components.dockerd(),
        ):
            self._start(component)
        registry = self.registry_server(pki, components)
        registry.trust()
        self._start(registry.component())
        with closing(docker.DockerClient(base_url=f"unix://{self.layout.docker_socket}")) as engine:
            import_pause_image(engine, binaries.pause, self.layout.containerd_socket)
            ensure_base_image(engine, self.config.cache / "images")
        self._start(components.kubelet())
        self._wait_node_ready(api)
        for component in (components.kube_proxy(), components.coredns()):
            self._start(component)
        self.network.put_guard_first()
        api.close()
        self.layout.state_file.write_text(json.dumps(asdict(versions)))

    def _fresh_etcd_if_changed(self, versions: Versions) -> None:
        """Another release starts from an empty etcd; the lab keeps nothing in it."""
        previous = self.last_versions()
        data = self.layout.data / "etcd"
        if previous is None or previous == versions or not data.exists():
            return
        say(
            _("starting with an empty etcd: its data was written by {previous}").format(
                previous=previous.describe()
            )
        )
        shutil.rmtree(data)

    def _start(self, component: Component) -> None:
        """Start `component`, or keep it when it already runs and becomes ready.

        One that runs but exits while being checked (it was dying: SIGTERM'd, crashing) is
        started again once it is gone, so `up` brings back just what is missing.
        """
        name = component.name
        if self.supervisor.is_running(name):
            try:
                self.supervisor.wait_ready(
                    name, component.ready, timeout=component.timeout, what=component.what
                )
                return
            except ProbelabError:
                if self.supervisor.is_running(name):
                    raise
                say(_("{name} exited while being checked; starting it again").format(name=name))
        argv = [*component.argv, *self.config.extra_args.get(name, ())]
        with step(f"starting {name}"):
            self.supervisor.start(name, argv)
            self._started.append(name)
            self.supervisor.wait_ready(
                name, component.ready, timeout=component.timeout, what=component.what
            )

    def _pki(self) -> PkiLayout:
        config = self.config
        pki = ensure_pki(
            self.layout.pki,
            node_name=config.node_name,
            server=config.apiserver_url,
            context=config.context,
            apiserver_ips=["127.0.0.1", config.node_ip, config.kubernetes_service_ip],
            apiserver_dns=[
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                f"kubernetes.default.svc.{config.cluster_domain}",
            ],
            node_ips=[config.node_ip],
        )
        self.layout.kubeconfig.unlink(missing_ok=True)
        self.layout.kubeconfig.symlink_to(pki.kubeconfig("admin"))
        return pki

    def _link_binaries(self, binaries: Binaries) -> None:
        for path in [*binaries.kubernetes.iterdir(), binaries.etcd, binaries.coredns]:
            link = self.layout.bin / path.name
            link.unlink(missing_ok=True)
            link.symlink_to(path)

    def registry_server(
        self, pki: PkiLayout | None, components: Components | None = None
    ) -> LocalRegistryServer:
        hosts_dir = self.layout.etc / "containerd" / "certs.d"
        if components is not None:
            hosts_dir = components.registry_hosts_dir
        return LocalRegistryServer(self.config, pki or PkiLayout(self.layout.pki), hosts_dir)

    @staticmethod
    def _grant_coredns(api: client.ApiClient) -> None:
        """CoreDNS reads Services, EndpointSlices, Pods and Namespaces; nothing else."""
        kube.apply(
            api,
            [
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRole",
                    "metadata": {"name": "probelab:coredns"},
                    "rules": [
                        {
                            "apiGroups": [""],
                            "resources": ["services", "endpoints", "pods", "namespaces"],
                            "verbs": ["list", "watch"],
                        },
                        {
                            "apiGroups": ["discovery.k8s.io"],
                            "resources": ["endpointslices"],
                            "verbs": ["list", "watch"],
                        },
                    ],
                },
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {"name": "probelab:coredns"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": "probelab:coredns",
                    },
                    "subjects": [
                        {
                            "apiGroup": "rbac.authorization.k8s.io",
                            "kind": "User",
                            "name": "probelab:coredns",
                        }
                    ],
                },
            ],
        )

    def _wait_node_ready(self, api: client.ApiClient) -> None:
        name = self.config.node_name
        with step(f"waiting for node {name} to be Ready"):
            try:
                kube.wait_nodes_ready(api, {name}, timeout=NODE_READY_TIMEOUT)
            except AssertionError as error:
                raise ProbelabError(
                    f"{error}; last lines of {self.supervisor.log_file('kubelet')}:\n"
                    f"{self.supervisor.log_tail('kubelet')}"
                ) from error

    def _drain_pods(self) -> None:
        """Delete every pod and wait, so kubelet unwinds sandboxes, veths and mounts."""
        if not (
            self.supervisor.is_running("kubelet") and self.supervisor.is_running("kube-apiserver")
        ):
            return
        for name in ("kube-controller-manager", "kube-scheduler"):  # nothing may recreate them
            self.supervisor.stop(name)
        api = kube.api_client(self.layout.kubeconfig, self.config.context)
        core = client.CoreV1Api(api)
        try:
            for pod in core.list_pod_for_all_namespaces().items:
                meta = pod.metadata
                if meta is not None and meta.name and meta.namespace:
                    _delete_pod(core, meta.name, meta.namespace)
            kube.wait_deleted(
                core.list_pod_for_all_namespaces,
                timeout=POD_DRAIN_TIMEOUT,
                what="every pod to be deleted",
            )
        except AssertionError as error:
            say(f"warning: {error}; stopping anyway")
        finally:
            api.close()


def _delete_pod(core: client.CoreV1Api, name: str, namespace: str) -> None:
    """Delete a pod; one that is already gone (it finished terminating) is no failure."""
    try:
        core.delete_namespaced_pod(name, namespace, grace_period_seconds=1)
    except ApiException as error:
        if error.status != 404:
            raise


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def purge(config: LocalClusterConfig) -> None:
    """Remove the state directory entirely (after `down`)."""
    shutil.rmtree(config.layout.root, ignore_errors=True)
