"""The images upstream's probe specs run, made here under upstream's own names and tags.

No registry is reachable, so each is made from what is: agnhost is upstream's Go program
of the same release on the Debian base the lab image uses (the specs run shell commands in
it), busybox is Debian's static busybox with a link per applet, and pause is probelab's own
pause program. The names come from `test/utils/image/manifest.go` of the release, so a
release that bumps a tag gets an image under the new tag. Each is imported into
containerd's `k8s.io` namespace; the specs' pods pull `IfNotPresent`, so kubelet uses them.
"""

import io
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import astuple, dataclass
from pathlib import Path

import docker

from probelab.clusters.local.build import SuiteBinaries
from probelab.clusters.local.images import (
    BASE_IMAGE,
    containerd_images,
    ensure_base_image,
    import_into_containerd,
    import_pause_image,
)
from probelab.errors import ProbelabError
from probelab.i18n import _
from probelab.progress import step

MANIFEST_FILE = Path("test/utils/image/manifest.go")
_REGISTRY = re.compile(r'^\s*(\w+Registry):\s*"([^"]+)"', re.MULTILINE)
_CONFIG = re.compile(r'configs\[(\w+)\]\s*=\s*Config\{list\.(\w+),\s*"([^"]+)",\s*"([^"]+)"\}')


@dataclass(frozen=True)
class E2eImages:
    """The references the probe specs' pods name."""

    agnhost: str
    busybox: str
    pause: str

    def all(self) -> tuple[str, ...]:
        return astuple(self)


def upstream_references(manifest_go: str) -> E2eImages:
    """Read the default registry, name and tag of each image from upstream's manifest.go."""
    registries = dict(_REGISTRY.findall(manifest_go))
    configs = {image: (reg, name, tag) for image, reg, name, tag in _CONFIG.findall(manifest_go)}

    def reference(image: str) -> str:
        if image not in configs or configs[image][0] not in registries:
            raise ProbelabError(
                _("no {image} image in upstream's {file}").format(image=image, file=MANIFEST_FILE)
            )
        registry, name, tag = configs[image]
        return f"{registries[registry]}/{name}:{tag}"

    return E2eImages(reference("Agnhost"), reference("BusyBox"), reference("Pause"))


def release_images(binaries: SuiteBinaries) -> E2eImages:
    return upstream_references((binaries.source / MANIFEST_FILE).read_text())


def missing(images: E2eImages, containerd_socket: Path) -> list[str]:
    """The references kubelet would have to pull, since containerd lacks them."""
    present = containerd_images(containerd_socket)
    return [reference for reference in images.all() if reference not in present]


def provide(
    engine: docker.DockerClient,
    images: E2eImages,
    binaries: SuiteBinaries,
    pause_binary: Path,
    containerd_socket: Path,
    cache_dir: Path,
) -> None:
    """Make and import into containerd whichever of the images it lacks."""
    lacking = set(missing(images, containerd_socket))
    if images.agnhost in lacking:
        ensure_base_image(engine, cache_dir)
        _build_agnhost(engine, images.agnhost, binaries.agnhost)
        import_into_containerd(engine, images.agnhost, containerd_socket)
    if images.busybox in lacking:
        _import_busybox(engine, images.busybox)
        import_into_containerd(engine, images.busybox, containerd_socket)
    if images.pause in lacking:
        import_pause_image(engine, pause_binary, containerd_socket, images.pause)


def _build_agnhost(engine: docker.DockerClient, reference: str, agnhost: Path) -> None:
    """Upstream's image runs /agnhost with the spec's arguments; `pause` when given none."""
    dockerfile = (
        f'FROM {BASE_IMAGE}\nCOPY agnhost /agnhost\nENTRYPOINT ["/agnhost"]\nCMD ["pause"]\n'
    ).encode()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
        tar.add(agnhost, arcname="agnhost")
    context.seek(0)
    with step(_("building {image} from agnhost of the same release").format(image=reference)):
        engine.images.build(fileobj=context, custom_context=True, tag=reference, rm=True)


def _import_busybox(engine: docker.DockerClient, reference: str) -> None:
    what = _("making {image} from busybox-static").format(image=reference)
    with tempfile.TemporaryDirectory() as work, step(what):
        busybox = _debian_busybox(Path(work))
        applets = subprocess.run(
            [str(busybox), "--list-full"], capture_output=True, text=True, check=True
        ).stdout.split()
        layer = io.BytesIO()
        with tarfile.open(fileobj=layer, mode="w") as tar:
            for directory in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root"):
                tar.addfile(_dir(directory, 0o755))
            tar.addfile(_dir("tmp", 0o1777))
            tar.add(busybox, arcname="bin/busybox")
            for applet in applets:
                if applet != "bin/busybox":
                    link = tarfile.TarInfo(applet)
                    link.type, link.linkname = tarfile.SYMTYPE, "/bin/busybox"
                    tar.addfile(link)
        repository, tag = reference.rsplit(":", 1)
        engine.api.import_image_from_data(
            layer.getvalue(), repository=repository, tag=tag, changes=['CMD ["sh"]']
        )


def _dir(name: str, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, mode
    return info


def _debian_busybox(work: Path) -> Path:
    """Debian's statically linked busybox, fetched with apt from the machine's mirror."""
    if shutil.which("apt-get") is None:
        raise ProbelabError(_("making the busybox image needs apt-get (Debian's busybox-static)"))
    fetched = subprocess.run(
        ["apt-get", "download", "busybox-static"], cwd=work, capture_output=True, text=True
    )
    debs = sorted(work.glob("busybox-static_*.deb"))
    if fetched.returncode != 0 or not debs:
        raise ProbelabError(
            _("apt-get download busybox-static failed: {error}; run `apt-get update` first").format(
                error=fetched.stderr.strip()
            )
        )
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(work / "root")], check=True)
    return work / "root" / "bin" / "busybox"
