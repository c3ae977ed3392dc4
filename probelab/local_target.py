"""The local cluster as a target for a tool that pushes the lab image and runs pods there.

`probelab observe` and the model's benchmarks all need the same three things from a running
local cluster: its registry, the lab image built and pushed to it, and an API client.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kubernetes import client

from probelab import kube
from probelab.clusters.local.cluster import LocalCluster
from probelab.docker_engine import docker_client
from probelab.errors import ProbelabError
from probelab.images import build_and_push
from probelab.registries.base import Registry


@dataclass(frozen=True)
class LocalTarget:
    cluster: LocalCluster
    registry: Registry
    image: str
    api: client.ApiClient


def local_target(app_dir: Path) -> LocalTarget:
    """The running local cluster with the lab image pushed; one clear error when it is down."""
    local = LocalCluster()
    if not local.is_up():
        raise ProbelabError("the local cluster is not up; start it with `probelab cluster up`")
    handle = local.handle(owned=False)
    assert handle.registry is not None  # the local cluster always has one
    engine = docker_client(handle.docker_host)
    try:
        image = build_and_push(engine, app_dir, handle.registry)
    finally:
        engine.close()
    return LocalTarget(
        local, handle.registry, image, kube.api_client(handle.kubeconfig, handle.context)
    )
