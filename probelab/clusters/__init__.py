"""Cluster providers: where the lab's pods run.

`local` is upstream Kubernetes run as host processes on this machine; `existing` is a
cluster the user names by kubeconfig context (never the current context by accident);
`auto` picks kind when Docker and kind are present, else the local cluster.
"""

import shutil
from collections.abc import Callable
from pathlib import Path

from probelab.clusters.base import ClusterHandle
from probelab.clusters.local.releases import Request
from probelab.errors import ProbelabError
from probelab.progress import say

CHOICES = ("auto", "local", "kind", "existing")


def choose(requested: str) -> str:
    """Resolve `auto` to a provider, saying which and why."""
    if requested != "auto":
        return requested
    if shutil.which("kind") and shutil.which("docker"):
        say("cluster: kind (kind and docker are on PATH; --cluster=local to override)")
        return "kind"
    say("cluster: local (no kind on PATH; upstream Kubernetes as host processes)")
    return "local"


def bring_up(
    provider: str,
    *,
    kubeconfig: Path | None,
    context: str | None,
    kubernetes_version: Request | None = None,
) -> tuple[ClusterHandle, Callable[[], None]]:
    """A ready cluster and the function that tears down whatever this call started."""
    if kubernetes_version is not None and provider not in ("local", "kind"):
        raise ProbelabError(
            f"--kubernetes-version chooses the local or kind cluster's version; "
            f"--cluster={provider} runs the version it has"
        )
    if provider == "existing":
        if not context:
            raise ProbelabError("--cluster=existing needs --kube-context: name the context")
        return ClusterHandle("existing", kubeconfig, context, owned=False), lambda: None
    if provider == "local":
        from probelab.clusters.local.cluster import LocalCluster

        local = LocalCluster()
        handle = local.up(kubernetes_version)
        return handle, (local.down if handle.owned else lambda: None)
    if provider == "kind":
        from probelab.clusters import kind

        return kind.bring_up(request=kubernetes_version)
    raise ProbelabError(f"unknown cluster provider {provider!r}; choose from {', '.join(CHOICES)}")
