"""The ECR provider's pull secrets on the real cluster: merge, idempotence, token refresh.

The ECR API is moto in server mode; the secrets, ServiceAccounts and namespaces are real.
Each test works in namespaces of its own (prefix `ecr-it`), made and deleted here, and goes
through `Lab.add_pull_secret`, the step the labs use.
"""

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from kubernetes import client

from probelab import kube
from probelab.aws_stub import ACCOUNT, ManualClock, MotoServer
from probelab.lab import Lab, Scenario, namespace_name
from probelab.registries.base import PULL_SECRET
from probelab.registries.ecr import EcrRegistry
from probelab.registries.ecr_refresh import PullSecretRefresher

pytest_plugins = ["probelab.aws_stub"]
REGION = "ap-northeast-2"
HOST = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
LIFETIME = timedelta(seconds=2)
# A refreshed secret is written right when the token is due; allow the API a moment.
REPLACE_ALLOWANCE = 30.0


@pytest.fixture
def labs(kube_api: client.ApiClient) -> Iterator[list[Lab]]:
    """Labs the test starts; their namespaces are deleted afterwards."""
    started: list[Lab] = []
    yield started
    for lab in started:
        lab.close()


def start_lab(
    api: client.ApiClient, labs: list[Lab], registry: EcrRegistry, *, pull_secret: bool
) -> Lab:
    scenario = Scenario("ecr", (), pull_secret=pull_secret)
    lab = Lab(
        api,
        scenario,
        namespace=namespace_name("ecr-it", scenario.name),
        run_id=uuid.uuid4().hex[:8],
        image=f"{registry.repository_uri}:unused",
        registry=registry,
        manifests_dir=MANIFESTS,
    )
    labs.append(lab)
    return lab.start()


def pull_secret_names(api: client.ApiClient, namespace: str) -> list[str]:
    account = client.CoreV1Api(api).read_namespaced_service_account("default", namespace)
    return [str(ref.name) for ref in account.image_pull_secrets or []]


def host_auth(secret: client.V1Secret) -> dict[str, str]:
    """The `auths` entry for HOST of a `kubernetes.io/dockerconfigjson` secret."""
    assert secret.type == "kubernetes.io/dockerconfigjson"
    config = json.loads(base64.b64decode((secret.data or {})[".dockerconfigjson"]))
    entry: dict[str, str] = config["auths"][HOST]
    return entry


def read_auth(api: client.ApiClient, namespace: str) -> dict[str, str]:
    return host_auth(client.CoreV1Api(api).read_namespaced_secret(PULL_SECRET, namespace))


def test_patch_keeps_existing_entries_and_rerunning_changes_nothing(
    aws: MotoServer, kube_api: client.ApiClient, labs: list[Lab]
) -> None:
    lab = start_lab(kube_api, labs, EcrRegistry(REGION), pull_secret=False)
    kube.add_pull_secret_to_service_account(kube_api, lab.namespace, "team-regcred")

    lab.add_pull_secret()
    assert pull_secret_names(kube_api, lab.namespace) == ["team-regcred", PULL_SECRET]
    auth = read_auth(kube_api, lab.namespace)
    assert base64.b64decode(auth["auth"]).decode() == f"AWS:{ACCOUNT}-auth-token"

    # Again, and from a second run's provider: one secret, the same two entries.
    lab.add_pull_secret()
    lab.registry = EcrRegistry(REGION)
    lab.add_pull_secret()
    assert pull_secret_names(kube_api, lab.namespace) == ["team-regcred", PULL_SECRET]
    assert read_auth(kube_api, lab.namespace) == auth
    assert lab.registry.created is False


def test_refresher_replaces_the_secret_when_the_token_expires(
    aws: MotoServer, kube_api: client.ApiClient, labs: list[Lab]
) -> None:
    registry = EcrRegistry(REGION, lifetime=LIFETIME, refresh_before=timedelta(0))
    lab = start_lab(kube_api, labs, registry, pull_secret=True)
    fresh = read_auth(kube_api, lab.namespace)
    # moto's token never changes, and the API server ignores a replace that changes nothing,
    # so the secret is given a stale token first: the refresh must put the current one back.
    stale = {"auths": {HOST: {"username": "AWS", "password": "expired-token-0000"}}}
    kube.put_pull_secret(kube_api, lab.namespace, PULL_SECRET, json.dumps(stale))

    refresher = PullSecretRefresher(registry, kube_api).start()
    try:
        kube.watch_until(
            client.CoreV1Api(kube_api).list_namespaced_secret,
            lambda secret: host_auth(secret) == fresh,
            timeout=LIFETIME.total_seconds() + REPLACE_ALLOWANCE,
            what=f"{PULL_SECRET} to carry the current token again",
            namespace=lab.namespace,
            field_selector=f"metadata.name={PULL_SECRET}",
        )
    finally:
        refresher.stop()
    assert registry.token_fetches >= 2


def test_refresh_touches_only_probelab_secrets_for_this_registry(
    aws: MotoServer, kube_api: client.ApiClient, labs: list[Lab]
) -> None:
    clock = ManualClock()
    registry = EcrRegistry(REGION, clock=clock)
    ours = start_lab(kube_api, labs, registry, pull_secret=True)
    other_registry = start_lab(kube_api, labs, registry, pull_secret=False)
    kube.put_pull_secret(
        kube_api,
        other_registry.namespace,
        PULL_SECRET,
        json.dumps({"auths": {"other.example": {}}}),
    )
    not_probelab = f"ecr-it-foreign-{uuid.uuid4().hex[:6]}"
    kube.create_namespace(kube_api, not_probelab, {})
    try:
        kube.put_pull_secret(kube_api, not_probelab, PULL_SECRET, registry.docker_config_json())
        refresher = PullSecretRefresher(registry, kube_api)

        assert refresher.refresh_if_due() == []  # the token is still good
        clock.now += timedelta(hours=12)
        registry.credentials()  # a new lab fetches the new token first: still a refresh
        refreshed = refresher.refresh_if_due()
        assert ours.namespace in refreshed
        assert other_registry.namespace not in refreshed
        assert not_probelab not in refreshed
        assert registry.token_fetches == 2
    finally:
        kube.delete_namespace(kube_api, not_probelab)
