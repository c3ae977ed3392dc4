"""The images a kind node runs, made from the same Go builds as the local cluster.

kubeadm names kube-apiserver, kube-controller-manager, kube-scheduler and kube-proxy
`registry.k8s.io/<name>:<version>`; kind's own node-image build makes images of those names
from binaries too, so they are made under those names. etcd and CoreDNS are the local
cluster's versions, not the ones kubeadm pins, so they carry their real versions under
`probelab.invalid/` and the cluster config points kubeadm at them. kube-proxy's iptables
mode needs iptables in its image: it gets the node's own Debian root underneath, with the
iptables backend (legacy or nf_tables) this machine's Docker engine uses.
"""

import io
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from probelab.clusters.local.build import Binaries
from probelab.clusters.local.components import PAUSE_IMAGE

KUBE_IMAGES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
OWN_REPOSITORY = "probelab.invalid"
PATH_ENV = "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ComponentVersions:
    kubernetes: str
    etcd: str
    coredns: str

    @property
    def etcd_image(self) -> str:
        return f"{OWN_REPOSITORY}/etcd:{self.etcd}"

    @property
    def coredns_image(self) -> str:
        return f"{OWN_REPOSITORY}/coredns:{self.coredns}"

    def kube_image(self, name: str) -> str:
        return f"registry.k8s.io/{name}:{self.kubernetes}"


def iptables_mode() -> str:
    """`nft` or `legacy`: whichever backend holds more of this machine's rules.

    Docker writes a node's DNS rules with the host's iptables, kind's entrypoint then picks
    the backend with more rules, and kube-proxy must write to the same one.
    """

    def rule_count(command: str) -> int:
        try:
            result = subprocess.run([command], capture_output=True, text=True, check=False)
        except FileNotFoundError:
            return 0
        return sum(line.startswith("-") for line in result.stdout.splitlines())

    legacy = rule_count("iptables-legacy-save")
    nft = rule_count("iptables-nft-save")
    return "legacy" if legacy > nft else "nft"


def _layer(files: dict[str, tuple[bytes, int]], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path, (data, mode) in files.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(data), mode
            archive.addfile(info, io.BytesIO(data))
        for path, target in (links or {}).items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return buffer.getvalue()


def _import(engine: docker.DockerClient, reference: str, layer: bytes, changes: list[str]) -> str:
    repository, tag = reference.rsplit(":", 1)
    engine.api.import_image_from_data(layer, repository=repository, tag=tag, changes=changes)
    return reference


def _single_binary_image(
    engine: docker.DockerClient, reference: str, binary: Path, inside: str, entrypoint: bool
) -> str:
    changes = [PATH_ENV]
    if entrypoint:
        changes.append(f'ENTRYPOINT ["{inside}"]')
    return _import(engine, reference, _layer({inside: (binary.read_bytes(), 0o755)}), changes)


def _kube_proxy_image(
    engine: docker.DockerClient, reference: str, binary: Path, node_base: str
) -> str:
    """kube-proxy on the node's Debian root, its iptables set to this machine's backend."""
    mode = iptables_mode()
    links = {
        f"/etc/alternatives/{family}{suffix}": f"/usr/sbin/{family}-{mode}{suffix}"
        for family in ("iptables", "ip6tables")
        for suffix in ("", "-save", "-restore")
    }
    container = engine.containers.create(node_base, command=["/bin/true"])
    try:
        layer = _layer({"/usr/local/bin/kube-proxy": (binary.read_bytes(), 0o755)}, links)
        container.put_archive("/", layer)
        repository, tag = reference.rsplit(":", 1)
        container.commit(repository=repository, tag=tag, changes=[PATH_ENV, "ENTRYPOINT []"])
    finally:
        container.remove(force=True)
    return reference


def make_images(
    engine: docker.DockerClient, binaries: Binaries, versions: ComponentVersions, node_base: str
) -> list[str]:
    """Every image the node preloads, made in `engine`; returns their references."""
    made = [
        _single_binary_image(
            engine,
            versions.kube_image(name),
            binaries.kube(name),
            f"/usr/local/bin/{name}",
            entrypoint=False,
        )
        for name in KUBE_IMAGES
    ]
    made.append(
        _kube_proxy_image(
            engine, versions.kube_image("kube-proxy"), binaries.kube("kube-proxy"), node_base
        )
    )
    made.append(
        _single_binary_image(
            engine, versions.etcd_image, binaries.etcd, "/usr/local/bin/etcd", entrypoint=False
        )
    )
    made.append(
        _single_binary_image(
            engine, versions.coredns_image, binaries.coredns, "/coredns", entrypoint=True
        )
    )
    made.append(
        _single_binary_image(engine, PAUSE_IMAGE, binaries.pause, "/pause", entrypoint=True)
    )
    return made
