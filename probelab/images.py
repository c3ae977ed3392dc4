"""Build the lab's image and push it, tagged by content so an unchanged app costs nothing.

The tag is a hash of every file in the build context, so the same sources always give the
same reference: a second run finds the tag in the registry and neither builds nor pushes.
Builds use the host network (the only way out of this machine leads to the package
registries `pip` needs), and the registry's credentials go to the engine via `login`.
"""

import hashlib
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors

from probelab.errors import ProbelabError
from probelab.model import lab_app
from probelab.progress import step
from probelab.registries.base import Registry
from probelab.secrets import SECRETS

IMAGE_NAME = lab_app.IMAGE_NAME
_IGNORED_PARTS = {"__pycache__", ".pytest_cache", ".venv"}


def _context_files(context: Path) -> Iterator[Path]:
    for path in sorted(context.rglob("*")):
        if path.is_file() and not _IGNORED_PARTS.intersection(path.relative_to(context).parts):
            yield path


def content_tag(context: Path) -> str:
    """A tag that changes exactly when a file of the build context changes."""
    digest = hashlib.sha256()
    for path in _context_files(context):
        # Length-prefixed, so no file's bytes can read as another file's name or content.
        for field in (str(path.relative_to(context)).encode(), path.read_bytes()):
            digest.update(len(field).to_bytes(8, "big") + field)
    return f"sha-{digest.hexdigest()[:12]}"


def _in_registry(engine: docker.DockerClient, reference: str, registry: Registry) -> bool:
    creds = registry.credentials()
    try:
        engine.images.get_registry_data(
            reference, auth_config={"username": creds.username, "password": creds.password}
        )
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as error:
        if error.status_code in (401, 403, 404):
            return False
        raise _unanswered(registry, error) from None
    return True


def _unanswered(registry: Registry, error: docker.errors.APIError) -> ProbelabError:
    """The registry is down, unreachable or refuses the login: one line naming it, before
    anything is built."""
    why = SECRETS.mask(" ".join(str(error.explanation or error).split()))
    if error.status_code in (401, 403):
        return ProbelabError(f"the registry {registry.host} refused the login ({why})")
    return ProbelabError(
        f"the registry {registry.host} does not answer ({why}); is it running? "
        "(`probelab cluster status` for the local one)"
    )


def build_and_push(engine: docker.DockerClient, context: Path, registry: Registry) -> str:
    """Build `context` and push it to `registry`; returns the pushed image reference."""
    if not (context / "Dockerfile").is_file():
        raise ProbelabError(f"no Dockerfile in {context}")
    repository = registry.repository(IMAGE_NAME)
    tag = content_tag(context)
    reference = f"{repository}:{tag}"
    if _in_registry(engine, reference, registry):
        return reference
    with step(f"building {reference}"):
        try:
            engine.images.build(path=str(context), tag=reference, network_mode="host", rm=True)
        except docker.errors.BuildError as error:
            log = "".join(str(chunk.get("stream", "")) for chunk in error.build_log)
            tail = "\n".join(log.strip().splitlines()[-15:])
            raise ProbelabError(f"docker build of {context} failed: {error.msg}\n{tail}") from error
    try:
        registry.login(engine)
    except docker.errors.APIError as error:
        raise _unanswered(registry, error) from None
    with step(f"pushing {reference}"):
        for line in engine.images.push(repository, tag=tag, stream=True, decode=True):
            if "error" in line:
                raise ProbelabError(f"pushing {reference} failed: {SECRETS.mask(line['error'])}")
    return reference
