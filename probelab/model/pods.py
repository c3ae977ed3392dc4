"""A pod as the model sees it: a name, a spec and where it came from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from probelab.model.errors import ModelError
from probelab.model.probes import container_probes


@dataclass(frozen=True)
class PodUnderTest:
    """A pod, or a workload's pod template, named after its object."""

    name: str
    spec: Mapping[str, Any]
    source: str  # "Pod/x" or "Deployment/x"

    def container(self, name: str | None = None) -> Mapping[str, Any]:
        """The named container, or the first one."""
        containers = self.spec.get("containers") or []
        for container in containers:
            if name is None or container.get("name") == name:
                return dict(container)
        raise ModelError(f"{self.source} has no container {name!r}")

    def index_of(self, name: str | None) -> int:
        names = [c.get("name") for c in self.spec.get("containers") or []]
        return 0 if name is None else names.index(name)

    def has_probes(self) -> bool:
        return any(container_probes(c) for c in self.spec.get("containers") or [])
