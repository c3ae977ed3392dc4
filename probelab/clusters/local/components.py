"""Command lines, config files and health checks of the local cluster's components.

One function per component returns a `Component`: the argv to run, and how to tell it is
ready. The settings follow what upstream's `hack/local-up-cluster.sh` and kubeadm give the
same binaries, reduced to one node: certificates for every identity, RBAC and Node
authorization, a kubelet on cgroupfs (this machine has cgroup v1, which kubelet 1.35
accepts only with `failCgroupV1: false`), and no image garbage collection so the locally
made pause image is never removed.
"""

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import yaml

from probelab.clusters.local.build import Binaries
from probelab.clusters.local.config import LocalClusterConfig
from probelab.clusters.local.network import PodNetwork
from probelab.clusters.local.pki import ADMIN, APISERVER, KUBELET_SERVING, PkiLayout

PAUSE_IMAGE = "probelab.invalid/pause:1"
KUBELET_HEALTHZ_PORT = 10248
COREDNS_HEALTH = "127.0.0.1:8091"
COREDNS_READY = "127.0.0.1:8181"


@dataclass(frozen=True)
class Component:
    """A process of the cluster and the check that says it is ready."""

    name: str
    argv: Sequence[str]
    ready: Callable[[], bool]
    what: str
    timeout: float = 60.0


def http_ok(
    url: str,
    *,
    ca: Path | None = None,
    client: tuple[Path, Path] | None = None,
    expect: int = 200,
) -> bool:
    """True when `url` answers with status `expect`.

    With `ca` the server certificate is verified against it; without it (components that
    serve a self-signed health endpoint) it is not.
    """
    context: ssl.SSLContext | None = None
    if url.startswith("https"):
        context = (
            ssl.create_default_context(cafile=str(ca)) if ca else ssl._create_unverified_context()
        )
        if client:
            context.load_cert_chain(str(client[0]), str(client[1]))
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return bool(response.status == expect)
    except urllib.error.HTTPError as error:
        return error.code == expect
    except (urllib.error.URLError, OSError):
        return False


def kube_proxy_synced(metrics: str = "http://127.0.0.1:10249/metrics") -> bool:
    """True once kube-proxy has written its iptables rules at least once.

    Its /healthz can answer before that first sync, and the sync inserts kube-proxy's jumps
    at the top of FORWARD: the guard, put first after kube-proxy is ready, would end up
    behind them. The sync's timestamp gauge is 0 until the first sync ends.
    """
    try:
        with urllib.request.urlopen(metrics, timeout=2) as response:
            text = response.read().decode(errors="replace")
    except (urllib.error.URLError, OSError):
        return False
    gauge = "kubeproxy_sync_proxy_rules_last_timestamp_seconds"
    # One line per IP family, e.g. `<gauge>{ip_family="IPv4"} 1.79e+09`.
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((gauge + "{", gauge + " "))
    ]
    return any(value > 0 for value in values)


def docker_pings(socket: Path) -> bool:
    """True when the Docker engine on `socket` answers its ping."""
    try:
        with closing(docker.DockerClient(base_url=f"unix://{socket}", timeout=5)) as client:
            return bool(client.ping())
    except docker.errors.DockerException:
        return False


def _write(path: Path, text: str) -> Path:
    """Write a component's config, leaving an unchanged one untouched: kube-proxy exits
    when its config file is written ("configuration file was updated"), so `up` on a
    running cluster must not rewrite what a healthy component reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


class Components:
    """Builds every component of one local cluster from its config, binaries and PKI."""

    def __init__(self, config: LocalClusterConfig, binaries: Binaries, pki: PkiLayout) -> None:
        self.config = config
        self.binaries = binaries
        self.pki = pki
        self.layout = config.layout

    def etcd(self) -> Component:
        client = f"http://127.0.0.1:{self.config.etcd_client_port}"
        peer = f"http://127.0.0.1:{self.config.etcd_peer_port}"
        return Component(
            "etcd",
            [
                str(self.binaries.etcd),
                "--name=probelab",
                f"--data-dir={self.layout.data / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=probelab={peer}",
                "--listen-metrics-urls=http://127.0.0.1:2381",
                "--log-level=warn",
            ],
            lambda: http_ok(f"{client}/health"),
            "its /health endpoint",
        )

    def apiserver(self) -> Component:
        pki = self.pki
        return Component(
            "kube-apiserver",
            [
                str(self.binaries.kube("kube-apiserver")),
                f"--advertise-address={self.config.node_ip}",
                f"--bind-address={self.config.node_ip}",
                f"--secure-port={self.config.apiserver_port}",
                f"--etcd-servers=http://127.0.0.1:{self.config.etcd_client_port}",
                f"--service-cluster-ip-range={self.config.service_cidr}",
                f"--client-ca-file={pki.ca_cert}",
                f"--tls-cert-file={pki.cert(APISERVER)}",
                f"--tls-private-key-file={pki.key(APISERVER)}",
                f"--kubelet-client-certificate={pki.cert('apiserver-kubelet-client')}",
                f"--kubelet-client-key={pki.key('apiserver-kubelet-client')}",
                f"--kubelet-certificate-authority={pki.ca_cert}",
                "--kubelet-preferred-address-types=InternalIP",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
            ],
            lambda: http_ok(
                f"{self.config.apiserver_url}/readyz",
                ca=pki.ca_cert,
                client=(pki.cert(ADMIN.name), pki.key(ADMIN.name)),
            ),
            "/readyz",
            timeout=120.0,
        )

    def controller_manager(self) -> Component:
        pki = self.pki
        return Component(
            "kube-controller-manager",
            [
                *self._controller_flags("kube-controller-manager"),
                f"--service-account-private-key-file={pki.sa_key}",
                f"--root-ca-file={pki.ca_cert}",
                f"--cluster-signing-cert-file={pki.ca_cert}",
                f"--cluster-signing-key-file={pki.ca_key}",
                "--use-service-account-credentials=true",
                f"--service-cluster-ip-range={self.config.service_cidr}",
            ],
            lambda: http_ok("https://127.0.0.1:10257/healthz"),
            "/healthz",
        )

    def _controller_flags(self, name: str) -> list[str]:
        """What the controller manager and scheduler share: one identity, one instance."""
        kubeconfig = self.pki.kubeconfig(name)
        return [
            str(self.binaries.kube(name)),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
            "--profiling=false",
            "--v=1",
        ]

    def scheduler(self) -> Component:
        return Component(
            "kube-scheduler",
            self._controller_flags("kube-scheduler"),
            lambda: http_ok("https://127.0.0.1:10259/healthz"),
            "/healthz",
        )

    def containerd_config(self) -> Path:
        """containerd's own config: our state dirs, cgroupfs, our CNI and registry trust."""
        layout = self.layout
        cni_dir = layout.etc / "cni"
        _write(
            cni_dir / "10-probelab.conflist",
            json.dumps(PodNetwork(self.config).cni_config(), indent=2),
        )
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        text = f"""version = 2
root = "{layout.data / "containerd"}"
state = "{layout.run / "containerd"}"

[grpc]
  address = "{layout.containerd_socket}"

[ttrpc]
  address = "{layout.run / "containerd-ttrpc.sock"}"

[debug]
  address = ""

[metrics]
  address = ""

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # Some hosts (this one among them) refuse a negative oom_score_adj even to root, and
  # kubelet asks for -998 on every pod sandbox; clamp it to containerd's own score.
  restrict_oom_score_adj = true

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{cni_dir}"

[{cri}.registry]
  config_path = "{self.registry_hosts_dir}"
"""
        return _write(layout.etc / "containerd.toml", text)

    @property
    def registry_hosts_dir(self) -> Path:
        """containerd's per-registry `hosts.toml` folders (its `config_path`)."""
        return self.layout.etc / "containerd" / "certs.d"

    def containerd(self) -> Component:
        socket = self.layout.containerd_socket
        return Component(
            "containerd",
            ["containerd", f"--config={self.containerd_config()}"],
            socket.exists,
            f"its socket {socket}",
        )

    def dockerd(self) -> Component:
        """A Docker engine for image builds; it runs its containers on our containerd.

        It makes no bridge and touches no iptables: builds use the host network, so the
        engine adds nothing to this machine's network.
        """
        layout = self.layout
        socket = layout.docker_socket
        return Component(
            "dockerd",
            [
                "dockerd",
                f"--data-root={layout.data / 'docker'}",
                f"--exec-root={layout.run / 'docker'}",
                f"--pidfile={layout.run / 'dockerd.own.pid'}",
                f"--host=unix://{socket}",
                f"--containerd={layout.containerd_socket}",
                "--bridge=none",
                "--iptables=false",
                "--ip-forward=false",
                "--ip-masq=false",
                "--storage-driver=overlay2",
                "--exec-opt=native.cgroupdriver=cgroupfs",
            ],
            lambda: docker_pings(socket),
            "its /_ping",
        )

    def kubelet_config(self) -> Path:
        pki = self.pki
        resolv = _write(self.layout.etc / "pod-resolv.conf", "")
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.config.node_ip,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": KUBELET_HEALTHZ_PORT,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(pki.ca_cert)},
            },
            "authorization": {"mode": "Webhook"},
            "tlsCertFile": str(pki.cert(KUBELET_SERVING)),
            "tlsPrivateKeyFile": str(pki.key(KUBELET_SERVING)),
            "cgroupDriver": "cgroupfs",
            "failCgroupV1": False,
            "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{self.layout.containerd_socket}",
            "clusterDNS": [self.config.node_ip],
            "clusterDomain": self.config.cluster_domain,
            # Pods get no upstream resolver: DNS stays inside the cluster.
            "resolvConf": str(resolv),
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "serializeImagePulls": False,
            "staticPodPath": "",
        }
        return _write(self.layout.etc / "kubelet.yaml", yaml.safe_dump(config))

    def kubelet(self) -> Component:
        return Component(
            "kubelet",
            [
                str(self.binaries.kube("kubelet")),
                f"--config={self.kubelet_config()}",
                f"--kubeconfig={self.pki.kubeconfig('kubelet')}",
                f"--root-dir={self.layout.data / 'kubelet'}",
                f"--cert-dir={self.layout.data / 'kubelet' / 'pki'}",
                f"--hostname-override={self.config.node_name}",
                f"--node-ip={self.config.node_ip}",
                "--v=1",
            ],
            lambda: http_ok(f"http://127.0.0.1:{KUBELET_HEALTHZ_PORT}/healthz"),
            "/healthz",
        )

    def kube_proxy_config(self) -> Path:
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(self.pki.kubeconfig("kube-proxy"))},
            "mode": "iptables",
            "clusterCIDR": str(self.config.pod_cidr),
            "hostnameOverride": self.config.node_name,
            "bindAddress": "127.0.0.1",
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            # Leave the machine's conntrack table size alone.
            "conntrack": {"maxPerCore": 0},
        }
        return _write(self.layout.etc / "kube-proxy.yaml", yaml.safe_dump(config))

    def kube_proxy(self) -> Component:
        return Component(
            "kube-proxy",
            [str(self.binaries.kube("kube-proxy")), f"--config={self.kube_proxy_config()}"],
            lambda: http_ok("http://127.0.0.1:10256/healthz") and kube_proxy_synced(),
            "/healthz and its first iptables sync",
        )

    def kube_proxy_cleanup(self) -> list[str]:
        """The command that removes every iptables rule kube-proxy wrote."""
        return [str(self.binaries.kube("kube-proxy")), "--cleanup"]

    def coredns(self) -> Component:
        """Cluster DNS on the node's bridge address, answering only for the cluster."""
        domain = self.config.cluster_domain
        corefile = f""".:53 {{
    bind {self.config.node_ip}
    errors
    health {COREDNS_HEALTH}
    ready {COREDNS_READY}
    kubernetes {domain} in-addr.arpa ip6.arpa {{
        kubeconfig {self.pki.kubeconfig("coredns")} {self.config.context}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
}}
"""
        path = _write(self.layout.etc / "Corefile", corefile)
        return Component(
            "coredns",
            [str(self.binaries.coredns), "-conf", str(path)],
            lambda: http_ok(f"http://{COREDNS_READY}/ready"),
            "its /ready endpoint",
        )
