"""Which Kubernetes release the local cluster runs, and which etcd and CoreDNS go with it.

A user names a minor (`1.34`: its newest patch the Go module proxy lists) or a patch
(`1.34.2`). Only the minors whose kubelet behaviour the lab's model covers and whose
components this cluster's flags were checked against are accepted; anything else is
refused before a single module is downloaded. The etcd and CoreDNS versions are the ones
the release itself deploys: kubeadm's constants in `k8s.io/kubernetes` at that tag.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path

from probelab.errors import ProbelabError
from probelab.i18n import _

SUPPORTED_MINORS = (33, 34, 35, 36)
# The version the lab is proven on first, and what runs when nobody asks for another.
DEFAULT_KUBERNETES = "v1.35.4"
ENVIRONMENT = "PROBELAB_KUBERNETES_VERSION"
KUBERNETES_MODULE = "k8s.io/kubernetes"
# kubeadm's constants: the etcd image and CoreDNS version a release ships with.
CONSTANTS_FILE = Path("cmd/kubeadm/app/constants/constants.go")
_REQUEST = re.compile(r"v?1\.(\d+)(?:\.(\d+))?")
_ETCD = re.compile(r'^\s*DefaultEtcdVersion\s*=\s*"v?(\d+\.\d+\.\d+)(?:-\d+)?"', re.MULTILINE)
_COREDNS = re.compile(r'^\s*CoreDNSVersion\s*=\s*"v?(\d+\.\d+\.\d+)"', re.MULTILINE)


@dataclass(frozen=True)
class Versions:
    """The versions of everything the local cluster builds."""

    kubernetes: str
    etcd: str
    coredns: str

    def describe(self) -> str:
        return f"Kubernetes {self.kubernetes} (etcd {self.etcd}, CoreDNS {self.coredns})"


@dataclass(frozen=True)
class Request:
    """A supported minor, and a patch when the user named one."""

    minor: int
    patch: int | None = None

    @property
    def query(self) -> str:
        """A Go module query: `v1.34` is the newest v1.34.x release the proxy lists."""
        return f"v1.{self.minor}" + ("" if self.patch is None else f".{self.patch}")


def supported_range() -> str:
    return f"1.{SUPPORTED_MINORS[0]} to 1.{SUPPORTED_MINORS[-1]}"


def parse(text: str) -> Request:
    """`1.34`, `v1.34`, `1.34.2` or `v1.34.2`; one clear line for anything else."""
    match = _REQUEST.fullmatch(text.strip())
    if match is None:
        raise ProbelabError(
            _(
                "'{text}' is not a Kubernetes version; supported: {range} "
                "(a minor such as 1.34, or a patch such as 1.34.2)"
            ).format(text=text, range=supported_range())
        )
    minor = int(match.group(1))
    if minor not in SUPPORTED_MINORS:
        raise ProbelabError(
            _("Kubernetes {version} is not supported; supported: {range}").format(
                version=text.strip(), range=supported_range()
            )
        )
    patch = match.group(2)
    return Request(minor, None if patch is None else int(patch))


def requested(option: str | None) -> Request | None:
    """The version asked for by option, else by $PROBELAB_KUBERNETES_VERSION, else none."""
    text = option if option is not None else os.environ.get(ENVIRONMENT)
    if text is None or not text.strip():
        return None
    return parse(text)


def components(constants_go: str, kubernetes: str) -> Versions:
    """etcd and CoreDNS as the release's kubeadm deploys them (image suffix `-0` dropped)."""
    etcd, coredns = _ETCD.search(constants_go), _COREDNS.search(constants_go)
    if etcd is None or coredns is None:
        raise ProbelabError(
            f"found no DefaultEtcdVersion or CoreDNSVersion in {CONSTANTS_FILE} of "
            f"Kubernetes {kubernetes}; this release lays its constants out differently"
        )
    return Versions(kubernetes, f"v{etcd.group(1)}", f"v{coredns.group(1)}")


def go_directive(go_mod: str) -> str:
    """The `go` line of a go.mod: the oldest Go that builds the module."""
    match = re.search(r"^go\s+(\d+\.\d+(?:\.\d+)?)\s*$", go_mod, re.MULTILINE)
    if match is None:
        raise ProbelabError("upstream's go.mod has no `go` line")
    return match.group(1)
