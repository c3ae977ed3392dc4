"""What every cluster provider hands the harness.

A provider gives a kubeconfig and context, says whether probelab owns the cluster (and so
tears it down at the end), and, where the cluster comes with one, the registry its nodes
pull from and the Docker engine images are built with. When probelab runs that registry
itself, `stand_in_store` lets it keep an ECR stand-in's images too.
"""

from dataclasses import dataclass
from pathlib import Path

from probelab.registries.base import Registry, StandInStore


@dataclass(frozen=True)
class ClusterHandle:
    """A reachable cluster, ready for the labs."""

    provider: str
    kubeconfig: Path | None
    context: str | None
    owned: bool
    registry: Registry | None = None
    docker_host: str | None = None
    stand_in_store: StandInStore | None = None
