"""Step 1 of the seed: the image is private, so the first pod cannot pull it.

Without a pull secret kubelet's pull is refused by the registry and the pod shows
ErrImagePull, then ImagePullBackOff. After the `ecr-regcred` secret is created and the
default ServiceAccount carries it, a new pod pulls the image and runs.
"""

import re
from datetime import UTC, datetime

import pytest

from probelab.lab import POD_START_ALLOWANCE
from probelab.registries.base import PULL_SECRET
from probelab.scenario import ScenarioLab

POD = "fastapi-bad"
MANIFEST = "fastapi-liveness-bad.yaml"
PULL_FAILURES = {"ErrImagePull", "ImagePullBackOff"}
# containerd says "401 Unauthorized" for a local registry; ECR's wording in the seed is
# "authorization failed: no basic auth credentials".
UNAUTHORIZED = re.compile(r"unauthorized|no basic auth credentials|authorization failed", re.I)

pytestmark = pytest.mark.scenario(
    "image-pull", MANIFEST, pull_secret=False, always_pull=True, acts=True
)


def test_pull_fails_without_secret(lab: ScenarioLab) -> None:
    status = lab.wait(
        lambda t: next((o.status for o in t.pods(POD) if o.status in PULL_FAILURES), None),
        timeout=POD_START_ALLOWANCE,
        what=f"{POD} to show ErrImagePull or ImagePullBackOff",
    )
    assert status in PULL_FAILURES
    failure = lab.wait(
        lambda t: next(
            (e for e in t.events(pod=POD, reason="Failed") if UNAUTHORIZED.search(e.message)),
            None,
        ),
        timeout=POD_START_ALLOWANCE,
        what="a Failed event saying the pull was unauthorized",
    )
    assert lab.image in failure.message


def test_runs_after_secret_and_service_account_patch(lab: ScenarioLab) -> None:
    lab.add_pull_secret()
    assert lab.service_account_pull_secrets() == [PULL_SECRET]
    assert lab.secret_type(PULL_SECRET) == "kubernetes.io/dockerconfigjson"

    lab.delete_pod(POD)
    recreated_at = datetime.now(UTC)
    lab.apply(MANIFEST)
    running = lab.wait(
        lambda t: next(
            (
                o
                for o in t.pods(POD)
                if o.at >= recreated_at and o.containers and o.containers[0].state == "running"
            ),
            None,
        ),
        timeout=POD_START_ALLOWANCE,
        what=f"the recreated {POD} to run",
    )
    assert running.phase == "Running"
