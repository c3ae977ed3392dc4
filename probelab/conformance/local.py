"""Everything the suite needs on the local cluster, then one run of it.

The suite is built for the version the API server reports, so it always matches the
running release; the images are made and imported when containerd lacks them. Both are
cached: a second run builds nothing and imports nothing.
"""

from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

import docker

from probelab import kube
from probelab.clusters.local.cluster import LocalCluster
from probelab.conformance import images
from probelab.conformance.suite import FOCUS, SuiteOutcome, SuiteRun, run
from probelab.errors import ProbelabError
from probelab.i18n import _


def run_on_local(
    report_dir: Path,
    *,
    focus: Sequence[str] = FOCUS,
    procs: int = 2,
    timeout: float = 3600.0,
    repo_list: Path | None = None,
    cluster: LocalCluster | None = None,
) -> SuiteOutcome:
    local = cluster or LocalCluster()
    if not local.is_up():
        raise ProbelabError(_("the local cluster is not up; start it with `probelab cluster up`"))
    layout, config = local.layout, local.config
    api = kube.api_client(layout.kubeconfig, config.context)
    try:
        version = kube.check_reachable(api)
        builder = local.builder()
        binaries = builder.kubernetes_tests(version)
        wanted = images.release_images(binaries)
        with closing(docker.DockerClient(base_url=f"unix://{layout.docker_socket}")) as engine:
            images.provide(
                engine,
                wanted,
                binaries,
                builder.pause(),
                layout.containerd_socket,
                config.cache / "images",
            )
        lacking = images.missing(wanted, layout.containerd_socket)
        if lacking:
            raise ProbelabError(
                _("containerd still lacks {images} after importing").format(
                    images=", ".join(lacking)
                )
            )
        suite = SuiteRun(
            binaries,
            layout.kubeconfig,
            config.context,
            report_dir,
            focus=focus,
            procs=procs,
            timeout=timeout,
            repo_list=repo_list,
        )
        return run(suite, api, layout.run / "conformance.lock")
    finally:
        api.close()
