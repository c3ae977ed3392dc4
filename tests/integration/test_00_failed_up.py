"""A component that dies during `up` is reported with its log, and `up` leaves nothing.

Runs only in a session on the local cluster while it is down (as in CI, where this file
comes first); in a kind or existing-cluster session, or where the local cluster is already
up, it is skipped, saying so. The scheduler is given
a flag it does not know, so etcd, the API server and the controller manager are running
when it fails: the test checks they were all stopped again and the network undone.
"""

import subprocess

import pytest

from probelab import clusters
from probelab.clusters.local.cluster import LocalCluster
from probelab.clusters.local.config import LocalClusterConfig
from probelab.clusters.local.network import PodNetwork
from probelab.errors import ProbelabError
from probelab.progress import say


def test_failed_up_reports_the_log_and_cleans_up(request: pytest.FixtureRequest) -> None:
    provider = clusters.choose(request.config.getoption("cluster"))
    if provider != "local":
        pytest.skip(f"this session runs on --cluster={provider}; the test is the local cluster's")
    if LocalCluster().is_up():
        pytest.skip("the local cluster is up; this test needs it down (it runs first in CI)")
    broken = LocalCluster(LocalClusterConfig(extra_args={"kube-scheduler": ("--no-such-flag",)}))
    say("test_00_failed_up: kube-scheduler gets a flag it does not know, on purpose; the "
        "failure and clean-up lines that follow are this test's, expected")  # fmt: skip
    with pytest.raises(ProbelabError) as failure:
        broken.up()
    message = str(failure.value)
    assert "kube-scheduler exited" in message
    assert "unknown flag: --no-such-flag" in message
    assert [s.name for s in broken.status() if s.pid is not None] == []
    assert not PodNetwork(broken.config).guard_installed()
    bridge = subprocess.run(["ip", "link", "show", broken.config.bridge], capture_output=True)
    assert bridge.returncode != 0, "the bridge is still there"
