"""Images the local cluster makes itself, because no registry can be pulled from here.

- The pause image: probelab's own static `pause` program alone in an image, imported into
  containerd's Kubernetes namespace under the name containerd is configured to use for pod
  sandboxes, so kubelet never tries to pull one.
- A stand-in for `python:3.11-slim`: Debian bookworm (whose Python is 3.11) made with
  debootstrap from the machine's own apt mirror, with the machine's CA bundle so `pip`
  inside `docker build` trusts the same TLS the host does. The lab's Dockerfile then builds
  unchanged. The root filesystem tarball is cached, so it is made once per machine.
"""

import hashlib
import io
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path

import docker
import docker.errors

from probelab.clusters.debootstrap import rootfs_tarball
from probelab.clusters.local.components import PAUSE_IMAGE
from probelab.errors import ProbelabError
from probelab.progress import step

BASE_IMAGE = "python:3.11-slim"
BASE_PACKAGES = ("python3", "python3-pip", "python3-venv", "python-is-python3", "ca-certificates")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BASE_IMAGE_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    # Debian marks its Python as externally managed; the official image has no such mark.
    "ENV PIP_BREAK_SYSTEM_PACKAGES=1",
    'CMD ["python3"]',
)


def image_exists(client: docker.DockerClient, reference: str) -> bool:
    try:
        client.images.get(reference)
    except docker.errors.ImageNotFound:
        return False
    return True


def containerd_images(containerd_socket: Path) -> set[str]:
    """The image references in containerd's `k8s.io` namespace, the one kubelet uses."""
    listed = subprocess.run(
        ["ctr", f"--address={containerd_socket}", "--namespace=k8s.io", "images", "ls", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    return set(listed.stdout.split())


def import_into_containerd(
    client: docker.DockerClient, reference: str, containerd_socket: Path
) -> None:
    """Copy an image from the Docker engine into containerd's `k8s.io` namespace.

    Kubelet then finds it under `reference` and, with an `IfNotPresent` policy, never
    pulls it.
    """
    archive = b"".join(client.images.get(reference).save(named=True))
    result = subprocess.run(
        ["ctr", f"--address={containerd_socket}", "--namespace=k8s.io", "images", "import", "-"],
        input=archive,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise ProbelabError(
            f"importing {reference} into containerd failed: {result.stderr.decode().strip()}"
        )


def import_pause_image(
    client: docker.DockerClient,
    pause_binary: Path,
    containerd_socket: Path,
    reference: str = PAUSE_IMAGE,
) -> None:
    """Put `pause_binary` alone in an image named `reference` into containerd (idempotent)."""
    if reference in containerd_images(containerd_socket):
        return
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        tar.add(pause_binary, arcname="pause")
    repository, tag = reference.rsplit(":", 1)
    client.api.import_image_from_data(
        layer.getvalue(), repository=repository, tag=tag, changes=['ENTRYPOINT ["/pause"]']
    )
    import_into_containerd(client, reference, containerd_socket)


def base_rootfs(cache_dir: Path, stop: threading.Event | None = None) -> Path:
    """The cached root filesystem tarball of the base image, made once per recipe (`stop`:
    see `rootfs_tarball`)."""

    def trust_host_cas(root: Path) -> None:
        shutil.copyfile(HOST_CA_BUNDLE, root / "etc/ssl/certs/ca-certificates.crt")

    return rootfs_tarball(
        cache_dir,
        "python-3.11-slim",
        BASE_PACKAGES,
        what=f"making the {BASE_IMAGE} stand-in with debootstrap (about a minute, once)",
        recipe_extra=hashlib.sha256(HOST_CA_BUNDLE.read_bytes()).hexdigest(),
        finish=trust_host_cas,
        stop=stop,
    )


def ensure_base_image(client: docker.DockerClient, cache_dir: Path) -> None:
    """Make sure the Docker engine has the `python:3.11-slim` stand-in."""
    if image_exists(client, BASE_IMAGE):
        return
    tarball = base_rootfs(cache_dir)
    repository, tag = BASE_IMAGE.split(":")
    with step(f"importing {BASE_IMAGE} into the Docker engine"):
        client.api.import_image_from_file(
            str(tarball), repository=repository, tag=tag, changes=list(BASE_IMAGE_CHANGES)
        )
