"""Which versions a user may ask for, and how etcd and CoreDNS follow the release.

No `go` runs here: where the builder would ask the module proxy, a module tree shaped like
upstream's stands in for the download.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from probelab.clusters.local import releases
from probelab.clusters.local.build import Builder, ModuleSource
from probelab.clusters.local.releases import Request, Versions, components, parse, requested
from probelab.errors import ProbelabError

# Shaped like kubeadm's constants.go: comments, other constants, a `-0` image revision.
CONSTANTS = """\
package constants

const (
\t// MinExternalEtcdVersion is not what kubeadm deploys.
\tMinExternalEtcdVersion = "3.5.11-0"

\t// DefaultEtcdVersion: the etcd image kubeadm deploys.
\tDefaultEtcdVersion = "3.6.8-0"

\t// CoreDNSImageName names the image.
\tCoreDNSImageName = "coredns"

\t// CoreDNSVersion: the CoreDNS kubeadm deploys.
\tCoreDNSVersion = "v1.14.2"
)
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.34", Request(34)),
        ("v1.34", Request(34)),
        ("1.33.13", Request(33, 13)),
        ("v1.36.0", Request(36, 0)),
        (" 1.35.4 ", Request(35, 4)),
    ],
)
def test_minors_and_patches_of_the_supported_range(text: str, expected: Request) -> None:
    assert parse(text) == expected


def test_a_minor_is_a_prefix_query_and_a_patch_is_exact() -> None:
    """Go resolves `v1.34` to the newest v1.34.x the proxy lists."""
    assert Request(34).query == "v1.34"
    assert Request(34, 2).query == "v1.34.2"


@pytest.mark.parametrize("text", ["1.29", "1.40", "1.32.9", "v1.37", "1.3"])
def test_an_unsupported_minor_names_the_range(text: str) -> None:
    with pytest.raises(ProbelabError) as raised:
        parse(text)

    message = str(raised.value)
    assert message == f"Kubernetes {text} is not supported; supported: 1.33 to 1.36"


@pytest.mark.parametrize("text", ["banana", "", "2.34", "1", "1.34.x", "1.34.2.1", "v1.34-rc"])
def test_what_is_not_a_version_names_the_range(text: str) -> None:
    with pytest.raises(
        ProbelabError, match=r"is not a Kubernetes version; supported: 1\.33 to 1\.36"
    ):
        parse(text)


def test_the_default_is_a_supported_patch() -> None:
    """The version the lab is proven on must itself pass the check users get."""
    assert parse(releases.DEFAULT_KUBERNETES).patch is not None


def test_requested_prefers_the_option_then_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(releases.ENVIRONMENT, raising=False)
    assert requested(None) is None
    monkeypatch.setenv(releases.ENVIRONMENT, "1.34")
    assert requested(None) == Request(34)
    assert requested("1.36.3") == Request(36, 3)
    monkeypatch.setenv(releases.ENVIRONMENT, "banana")
    with pytest.raises(ProbelabError, match="'banana' is not a Kubernetes version"):
        requested(None)
    monkeypatch.setenv(releases.ENVIRONMENT, "  ")
    assert requested(None) is None


def test_etcd_and_coredns_come_from_the_releases_constants() -> None:
    """The deployed etcd, not the minimum external one; the image revision is dropped."""
    assert components(CONSTANTS, "v1.36.3") == Versions("v1.36.3", "v3.6.8", "v1.14.2")


def test_constants_laid_out_differently_are_an_error_not_a_guess() -> None:
    with pytest.raises(ProbelabError, match="no DefaultEtcdVersion or CoreDNSVersion"):
        components(CONSTANTS.replace("CoreDNSVersion", "CoreDNSTag"), "v1.36.3")


def _fake_proxy(monkeypatch: pytest.MonkeyPatch, tree: Path, newest: str) -> list[tuple[str, str]]:
    """The builder's two proxy calls, answered from `tree`; returns what was asked."""
    (tree / releases.CONSTANTS_FILE).parent.mkdir(parents=True)
    (tree / releases.CONSTANTS_FILE).write_text(CONSTANTS)
    asked: list[tuple[str, str]] = []

    def module(self: Builder, path: str, version: str) -> ModuleSource:
        asked.append(("download", version))
        return ModuleSource(tree, "module k8s.io/kubernetes\n\ngo 1.26.0\n", "2026-01-01T00:00:00Z")

    def query(self: Builder, path: str, query: str) -> str:
        asked.append(("list", query))
        return newest

    monkeypatch.setattr(Builder, "module", module)
    monkeypatch.setattr(Builder, "newest", query)
    return asked


def test_a_minor_resolves_to_the_newest_listed_patch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _fake_proxy(monkeypatch, tmp_path / "k8s", newest="v1.36.3")

    versions = Builder(tmp_path / "cache").versions(Request(36))

    assert versions == Versions("v1.36.3", "v3.6.8", "v1.14.2")
    assert asked == [("list", "v1.36"), ("download", "v1.36.3")]


def test_a_patch_is_taken_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No list lookup: the download itself says whether the proxy has that patch."""
    asked = _fake_proxy(monkeypatch, tmp_path / "k8s", newest="v1.36.3")

    versions = Builder(tmp_path / "cache").versions(Request(36, 1))

    assert versions.kubernetes == "v1.36.1"
    assert asked == [("download", "v1.36.1")]
