"""Small pure helpers of the harness: pull-secret lists and scenario namespace names."""

from __future__ import annotations

import re

import pytest
from kubernetes.client import V1LocalObjectReference, V1ObjectMeta, V1ServiceAccount

from probelab.kube import merged_pull_secrets
from probelab.lab import namespace_name

# RFC 1123 label, which Kubernetes requires of namespace names.
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def test_pull_secret_is_added_after_existing_entries() -> None:
    """Patching a ServiceAccount must not drop secrets someone else put there."""
    assert merged_pull_secrets(["team-creds", "mirror-creds"], "ecr-regcred") == [
        {"name": "team-creds"},
        {"name": "mirror-creds"},
        {"name": "ecr-regcred"},
    ]


def test_pull_secret_already_present_is_not_added_twice() -> None:
    """Running the lab twice leaves the list as it was, in the same order."""
    assert merged_pull_secrets(["ecr-regcred", "team-creds"], "ecr-regcred") == [
        {"name": "ecr-regcred"},
        {"name": "team-creds"},
    ]


def test_pull_secret_on_an_account_without_any() -> None:
    assert merged_pull_secrets([], "ecr-regcred") == [{"name": "ecr-regcred"}]


def test_pull_secrets_from_a_service_account_object() -> None:
    """The names come from a ServiceAccount as the API returns it."""
    account = V1ServiceAccount(
        metadata=V1ObjectMeta(name="default", namespace="lab"),
        image_pull_secrets=[
            V1LocalObjectReference(name="team-creds"),
            V1LocalObjectReference(name="ecr-regcred"),
        ],
    )
    names = [str(ref.name) for ref in account.image_pull_secrets or []]

    merged = merged_pull_secrets(names, "ecr-regcred")

    assert merged == [{"name": "team-creds"}, {"name": "ecr-regcred"}]
    patched = V1ServiceAccount(
        image_pull_secrets=[V1LocalObjectReference(**entry) for entry in merged]
    )
    assert [ref.name for ref in patched.image_pull_secrets or []] == names


@pytest.mark.parametrize(
    "scenario",
    ["image-pull", "slow-no-startup", "a" * 80, "long-scenario-" * 6, "x"],
)
def test_namespace_name_is_a_dns_label(scenario: str) -> None:
    """Kubernetes rejects namespace names that are not DNS labels of at most 63 characters."""
    name = namespace_name("probelab", scenario)

    assert len(name) <= 63
    assert DNS_LABEL.fullmatch(name), name
    assert name.startswith("probelab-")


def test_namespace_name_keeps_the_scenario_readable() -> None:
    """A short name is kept whole, so `kubectl get ns` shows which scenario it is."""
    name = namespace_name("probelab", "bad-liveness")

    assert re.fullmatch(r"probelab-bad-liveness-[0-9a-f]{6}", name)


def test_namespace_name_cut_at_a_dash_has_no_double_dash() -> None:
    """Truncation that ends on a dash must not leave `--` before the suffix."""
    prefix = "p" * 55  # `prefix-` puts the dash exactly at the cut
    name = namespace_name(prefix, "scenario")

    assert "--" not in name
    assert DNS_LABEL.fullmatch(name), name
    assert len(name) <= 63


def test_namespace_names_are_unique_across_calls() -> None:
    """Two runs (or two scenarios cut to the same prefix) do not share a namespace.

    The suffix is 24 random bits, so 20 names collide with odds of about 1 in 90,000.
    """
    long = "very-long-scenario-name-" * 4
    names = {namespace_name("probelab", long) for _ in range(20)}

    assert len(names) == 20
