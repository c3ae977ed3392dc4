"""Stand-ins for the two images kind's registry recipe and the lab pull from Docker Hub.

Where no registry is reachable, kind's recipe cannot pull `registry:3`; Debian's
`docker-registry` (the same distribution registry, 2.8) serves instead, with the registry
image's own default config, on the `python:3.11-slim` stand-in for its libc. The tag
follows the binary and config, so an upgraded Debian package makes a new image.
"""

import hashlib
import io
import shutil
import tarfile

import docker

from probelab.clusters.local.images import BASE_IMAGE, image_exists
from probelab.errors import ProbelabError

REGISTRY_REPOSITORY = "probelab.invalid/registry"
# The distribution registry's own defaults, as the registry image ships them.
REGISTRY_CONFIG = """\
version: 0.1
storage:
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
"""
DOCKERFILE = f"""\
FROM {BASE_IMAGE}
COPY docker-registry /bin/registry
COPY config.yml /etc/docker/registry/config.yml
ENTRYPOINT ["/bin/registry", "serve", "/etc/docker/registry/config.yml"]
"""


def ensure_registry_standin(engine: docker.DockerClient) -> str:
    """The stand-in's reference, built in `engine` unless it is there already."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise ProbelabError(
            "no registry image can be pulled here and Debian's docker-registry is missing; "
            "install the docker-registry package"
        )
    with open(binary, "rb") as handle:
        program = handle.read()
    key = hashlib.sha256(program + REGISTRY_CONFIG.encode() + DOCKERFILE.encode()).hexdigest()
    reference = f"{REGISTRY_REPOSITORY}:{key[:12]}"
    if image_exists(engine, reference):
        return reference
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as archive:
        for name, data, mode in (
            ("docker-registry", program, 0o755),
            ("config.yml", REGISTRY_CONFIG.encode(), 0o644),
            ("Dockerfile", DOCKERFILE.encode(), 0o644),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            archive.addfile(info, io.BytesIO(data))
    context.seek(0)
    engine.images.build(
        fileobj=context, custom_context=True, tag=reference, network_mode="host", rm=True
    )
    return reference
