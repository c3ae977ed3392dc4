"""The Docker engine probelab talks to: the lab image's builds, kind's nodes and its
registry. One place opens it, so every caller fails the same clear way when none answers.
"""

import os

import docker
import docker.errors

from probelab.errors import ProbelabError


def docker_client(docker_host: str | None) -> docker.DockerClient:
    """A client for `docker_host`, else the environment's engine; a clear error if none."""
    try:
        engine = docker.DockerClient(base_url=docker_host) if docker_host else docker.from_env()
        engine.ping()
    except docker.errors.DockerException as error:
        where = docker_host or os.environ.get("DOCKER_HOST", "the default Docker socket")
        raise ProbelabError(f"no Docker engine answers at {where}: {error}") from error
    return engine
