"""Make a kind node image here, the way `kind build node-image` would if it could pull.

`kind build node-image` starts from kind's base image and pulls pause, etcd, CoreDNS,
kindnetd and the storage provisioner; none of that is reachable from here. This does its
build step on a root made here instead: a systemd Debian bookworm from debootstrap (trixie's
systemd 257 no longer boots on cgroup v1, bookworm's 252 does) with Debian's containerd,
runc and CNI plugins, kind's base files, kubeadm, kubelet and kubectl, `/kind/version`, and
every image the node runs imported into its containerd, then commits it with kind's
entrypoint. The result is tagged by a hash of everything that went in, so a second build
with the same inputs is a lookup.
"""

import hashlib
import io
import json
import tarfile
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import tenacity
from docker.models.containers import Container

from probelab.alongside import alongside
from probelab.clusters.debootstrap import rootfs_tarball
from probelab.clusters.kind_node.components import ComponentVersions, iptables_mode, make_images
from probelab.clusters.kind_node.layout import NodeFile, node_files, node_links, runtime_spec
from probelab.clusters.local.build import Binaries, Builder
from probelab.clusters.local.components import PAUSE_IMAGE
from probelab.clusters.local.images import base_rootfs, image_exists
from probelab.clusters.local.releases import Versions
from probelab.errors import ProbelabError
from probelab.progress import step

KIND_VERSION = "v0.33.0"
# The newest cri-tools the module proxy serves; crictl speaks CRI v1 to any containerd.
CRICTL_VERSION = "v1.34.0"
NODE_REPOSITORY = "probelab.invalid/kind-node"
BUILT_LABEL = "dev.probelab.kind-node"
NODE_PACKAGES = (
    "systemd",
    "conntrack",
    "iptables",
    "iproute2",
    "ethtool",
    "kmod",
    "libseccomp2",
    "ca-certificates",
    "jq",
    "procps",
    "containerd",
    "runc",
    "containernetworking-plugins",
)
# What kind's base Dockerfile does to systemd after installing it: no units a container
# cannot run, journald off the kernel log, and the node's own services enabled.
PREPARE_SYSTEMD = """set -eu
find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete
rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \
  /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \
  /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/*
echo ReadKMsg=no >> /etc/systemd/journald.conf
ln -sf /usr/lib/systemd/systemd /sbin/init
systemctl enable kubelet.service containerd.service undo-mount-hacks.service
systemctl mask systemd-binfmt.service
mkdir -p /etc/kubernetes/manifests
"""
IMPORT_DIR = "/kind/probelab-images"
CONTAINERD_READY_TIMEOUT = 30.0
COMMIT_CHANGES = [
    'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]',
    "CMD []",
    "ENV container=docker",
]
# systemd stops on SIGRTMIN+3 (SIGTERM makes it re-execute). `docker commit` cannot change
# the stop signal, but it keeps the build container's.
STOP_SIGNAL = "SIGRTMIN+3"


@dataclass(frozen=True)
class NodeImage:
    """A node image made here, and the component images kubeadm must be pointed at."""

    reference: str
    components: ComponentVersions


def _digest(parts: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def _archive(files: Iterable[NodeFile], links: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for file in files:
            info = tarfile.TarInfo(file.path.lstrip("/"))
            info.size, info.mode = len(file.data), file.mode
            archive.addfile(info, io.BytesIO(file.data))
        for path, target in links.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return buffer.getvalue()


def _exec(container: Container, command: list[str], what: str) -> str:
    code, output = container.exec_run(command)
    text = bytes(output or b"").decode(errors="replace")
    if code != 0:
        tail = "\n".join(text.strip().splitlines()[-15:])
        raise ProbelabError(f"{what} failed in the node build container (exit {code}):\n{tail}")
    return text


class NodeImageBuilder:
    """Builds (or finds) the node image for one Kubernetes version on one Docker engine."""

    def __init__(
        self, engine: docker.DockerClient, cache_root: Path, kind_version: str = KIND_VERSION
    ) -> None:
        self.engine = engine
        self.cache_root = cache_root
        self.builder = Builder(cache_root / "build")
        self.kind_version = kind_version

    def build(self, versions: Versions) -> NodeImage:
        with alongside(self._debian_roots):
            binaries = self.builder.all(versions)
            kubeadm = self.builder.kubeadm(versions.kubernetes)
            crictl = self.builder.crictl(CRICTL_VERSION)
            kind_module = self.builder.module("sigs.k8s.io/kind", self.kind_version).dir
        node_binaries = {
            "kubeadm": kubeadm,
            "kubelet": binaries.kube("kubelet"),
            "kubectl": binaries.kube("kubectl"),
        }
        files = node_files(kind_module, node_binaries, versions.kubernetes, PAUSE_IMAGE)
        files.append(NodeFile("/usr/local/bin/crictl", crictl.read_bytes(), 0o755))
        links = node_links()
        rootfs = self.rootfs()
        components = ComponentVersions(versions.kubernetes, versions.etcd, versions.coredns)
        key = _digest(
            [
                rootfs.name.encode(),
                PREPARE_SYSTEMD.encode(),
                json.dumps([*COMMIT_CHANGES, STOP_SIGNAL]).encode(),
                json.dumps(links, sort_keys=True).encode(),
                iptables_mode().encode(),
                json.dumps([components.etcd_image, components.coredns_image]).encode(),
                *(f"{f.path} {f.mode:o}".encode() + f.data for f in files),
                *(p.read_bytes() for p in self._component_binaries(binaries)),
            ]
        )[:12]
        reference = f"{NODE_REPOSITORY}:{versions.kubernetes}-{key}"
        if not image_exists(self.engine, reference):
            with step(f"making kind node image {reference}"):
                self._make(reference, rootfs, files, links, binaries, components)
        return NodeImage(reference, components)

    @staticmethod
    def _component_binaries(binaries: Binaries) -> list[Path]:
        return [
            *(binaries.kube(name) for name in ("kube-apiserver", "kube-controller-manager")),
            *(binaries.kube(name) for name in ("kube-scheduler", "kube-proxy")),
            binaries.etcd,
            binaries.coredns,
            binaries.pause,
        ]

    def rootfs(self, stop: threading.Event | None = None) -> Path:
        """The node's Debian root as a tarball, made once per package list."""
        return rootfs_tarball(
            self.cache_root / "images",
            "kind-node-root",
            NODE_PACKAGES,
            what="making the kind node's Debian root with debootstrap (about 2 min, once)",
            stop=stop,
        )

    def _debian_roots(self, stop: threading.Event) -> None:
        """Both Debian roots a kind run makes (the node's, the lab's base image), while the
        Go builds run (`alongside`)."""
        self.rootfs(stop)
        base_rootfs(self.cache_root / "images", stop)

    @staticmethod
    def base_image_name(rootfs: Path) -> str:
        return f"{NODE_REPOSITORY}-base:{rootfs.stem.rsplit('-', 1)[-1]}"

    def _base_image(self, rootfs: Path) -> str:
        reference = self.base_image_name(rootfs)
        if not image_exists(self.engine, reference):
            repository, tag = reference.rsplit(":", 1)
            self.engine.api.import_image_from_file(str(rootfs), repository=repository, tag=tag)
        return reference

    def _make(
        self,
        reference: str,
        rootfs: Path,
        files: list[NodeFile],
        links: dict[str, str],
        binaries: Binaries,
        components: ComponentVersions,
    ) -> None:
        base = self._base_image(rootfs)
        images = make_images(self.engine, binaries, components, base)
        container = self.engine.containers.create(
            base,
            entrypoint=["sleep"],
            command=["infinity"],
            security_opt=["seccomp=unconfined"],
            network_mode="none",
            stop_signal=STOP_SIGNAL,
            labels={BUILT_LABEL: "build"},
        )
        try:
            container.start()
            if not container.put_archive("/", _archive(files, links)):
                raise ProbelabError("could not copy kind's files into the node build container")
            _exec(container, ["sh", "-c", PREPARE_SYSTEMD], "preparing systemd")
            spec = json.loads(_exec(container, ["ctr", "oci", "spec"], "ctr oci spec"))
            spec_file = NodeFile(
                "/etc/containerd/cri-base.json", json.dumps(runtime_spec(spec), indent=2).encode()
            )
            container.put_archive("/", _archive([spec_file], {}))
            self._preload(container, images)
            repository, tag = reference.rsplit(":", 1)
            container.commit(repository=repository, tag=tag, changes=COMMIT_CHANGES)
        finally:
            container.remove(force=True)
            for image in images:
                self.engine.images.remove(image, force=True)

    def _preload(self, container: Container, images: list[str]) -> None:
        """Import every image into the node's containerd, which then ships inside the image."""
        container.exec_run(["containerd"], detach=True)
        try:
            for attempt in tenacity.Retrying(
                stop=tenacity.stop_after_delay(CONTAINERD_READY_TIMEOUT),
                wait=tenacity.wait_fixed(0.2),
                reraise=True,
            ):
                with attempt:
                    _exec(container, ["ctr", "version"], "waiting for containerd")
            for index, image in enumerate(images):
                self._import_one(container, image, f"{IMPORT_DIR}/{index}.tar")
        finally:
            container.exec_run(["sh", "-c", f"pkill containerd; rm -rf {IMPORT_DIR}"])

    def _import_one(self, container: Container, image: str, inside: str) -> None:
        with tempfile.TemporaryFile(dir=self.cache_root) as saved:
            for chunk in self.engine.images.get(image).save(named=True):
                saved.write(chunk)
            size = saved.tell()
            saved.seek(0)
            with tempfile.TemporaryFile(dir=self.cache_root) as wrapped:
                with tarfile.open(fileobj=wrapped, mode="w") as archive:
                    info = tarfile.TarInfo(inside.lstrip("/"))
                    info.size = size
                    archive.addfile(info, saved)
                wrapped.seek(0)
                if not container.put_archive("/", wrapped):
                    raise ProbelabError(f"could not copy {image} into the node build container")
        _exec(
            container,
            ["ctr", "--namespace=k8s.io", "images", "import", "--no-unpack", inside],
            f"importing {image}",
        )
        _exec(container, ["rm", "-f", inside], f"removing {inside}")
