"""An ECR registry for one run: repository ensured, token kept fresh, stand-in mapped.

This is what `--registry=ecr` sets up and tears down. Against real AWS it ensures the
repository and keeps the pull secrets' token fresh. Against an ECR API on this machine
(moto, pointed at with `AWS_ENDPOINT_URL`), whose registry host does not exist, it also
maps that host onto the local cluster's registry (see `ecr_mapping`).
"""

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from kubernetes import client

from probelab.clusters.base import ClusterHandle
from probelab.errors import ProbelabError
from probelab.progress import say
from probelab.registries.ecr import EcrRegistry, is_stand_in
from probelab.registries.ecr_mapping import StandInMapping
from probelab.registries.ecr_refresh import PullSecretRefresher


@contextmanager
def open_ecr(
    registry: EcrRegistry, cluster: ClusterHandle, api: client.ApiClient
) -> Iterator[EcrRegistry]:
    """`registry` ready to push to and pull from, until the block ends."""
    with ExitStack() as stack:
        uri = registry.repository_uri  # ensured now unless the caller did already
        method = getattr(registry.session.get_credentials(), "method", "?")
        state = "created" if registry.created else "already there"
        say(f"ECR repository {uri}: {state} (account {registry.account}, credentials: {method})")
        if is_stand_in(registry):
            if cluster.provider != "local":
                raise ProbelabError(
                    f"the ECR API at {registry.endpoint_url} is a stand-in with no registry "
                    "behind it; it works with --cluster=local, whose registry stores the images"
                )
            stack.callback(StandInMapping(registry).open().close)
            say(f"ECR stand-in at {registry.endpoint_url}: {registry.host} is the local registry")
        refresher = PullSecretRefresher(registry, api).start()
        stack.callback(refresher.stop)
        yield registry
