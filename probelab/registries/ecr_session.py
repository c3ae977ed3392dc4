"""An ECR registry for one run: repository ensured, token kept fresh, stand-in mapped.

This is what `--registry=ecr` sets up and tears down. Against real AWS it ensures the
repository and keeps the pull secrets' token fresh. Against an ECR API on this machine
(moto, pointed at with `AWS_ENDPOINT_URL`), whose registry host does not exist, it also
maps that host onto the registry probelab runs for the cluster, local or kind (see
`ecr_mapping`).
"""

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from kubernetes import client

from probelab.errors import ProbelabError
from probelab.progress import say
from probelab.registries.base import StandInStore
from probelab.registries.ecr import EcrRegistry, is_stand_in
from probelab.registries.ecr_mapping import StandInMapping
from probelab.registries.ecr_refresh import PullSecretRefresher


def stand_in_store(registry: EcrRegistry, store: StandInStore | None) -> StandInStore:
    """Where the stand-in's images go: `store`, the registry probelab runs for the cluster
    (None when the cluster is not one of probelab's)."""
    if store is None:
        raise ProbelabError(
            f"the ECR API at {registry.endpoint_url} is a stand-in with no registry behind "
            "it; it works with --cluster=local or --cluster=kind, whose registry (probelab's "
            "own) stores the images"
        )
    if os.geteuid() != 0:
        raise ProbelabError(
            f"the ECR stand-in needs root: it points {registry.host} at this machine in "
            "/etc/hosts and serves it on port 443; run as root (scripts/dev raises itself)"
        )
    return store


@contextmanager
def open_ecr(
    registry: EcrRegistry, store: StandInStore | None, api: client.ApiClient
) -> Iterator[EcrRegistry]:
    """`registry` ready to push to and pull from, until the block ends; a stand-in's images
    go to `store` (see `stand_in_store`)."""
    with ExitStack() as stack:
        uri = registry.repository_uri  # ensured now unless the caller did already
        method = getattr(registry.session.get_credentials(), "method", "?")
        state = "created" if registry.created else "already there"
        say(f"ECR repository {uri}: {state} (account {registry.account}, credentials: {method})")
        if is_stand_in(registry):
            target = stand_in_store(registry, store)
            stack.callback(StandInMapping(registry, target).open().close)
            say(f"ECR stand-in at {registry.endpoint_url}: {registry.host} is {target.description}")
        refresher = PullSecretRefresher(registry, api).start()
        stack.callback(refresher.stop)
        yield registry
