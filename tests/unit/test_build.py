"""The text `build` feeds to Go: staging modules, the wrapper go.mod, version ldflags.

Nothing here runs the real `go`; the inputs are shaped like upstream's own files, and where
a `go` process matters (stopping a side build) a shell script stands in for it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import assert_gone, started_pid
from probelab import locks
from probelab.alongside import Stopped
from probelab.clusters.local.build import (
    OWN_GO,
    Builder,
    _single_binary,
    kubernetes_wrapper_go_mod,
    staging_modules,
    staging_version,
    version_ldflags,
)
from probelab.clusters.local.releases import Versions, go_directive
from probelab.clusters.local.toolchain import Toolchains, version_tuple
from probelab.errors import ProbelabError

# Cut down from k8s.io/kubernetes v1.35.4's go.mod, keeping each kind of line it has.
UPSTREAM_GO_MOD = """\
// This is a generated file. Do not edit directly.

module k8s.io/kubernetes

go 1.25.0

godebug default=go1.25

require (
\tgithub.com/blang/semver/v4 v4.0.0
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0
\tk8s.io/klog/v2 v2.130.1
\tk8s.io/utils v0.0.0-20251002143259-bc988d571ff4
)

require (
\tk8s.io/gengo/v2 v2.0.0-20250922181213-ec3ebc5fd46b // indirect
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/apiextensions-apiserver => ./staging/src/k8s.io/apiextensions-apiserver
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/component-base => ./staging/src/k8s.io/component-base
\tk8s.io/cri-api => ./staging/src/k8s.io/cri-api
\tk8s.io/kube-openapi => k8s.io/kube-openapi v0.0.0-20250910181357-589584f1c912
\tgithub.com/example/fork => github.com/example/fork v1.2.3
\tk8s.io/sample-controller => ./staging/src/k8s.io/sample-controller
)
"""
STAGING_IN_SNIPPET = [
    "k8s.io/api",
    "k8s.io/apiextensions-apiserver",
    "k8s.io/client-go",
    "k8s.io/component-base",
    "k8s.io/cri-api",
    "k8s.io/sample-controller",
]
_REPLACE_LINE = re.compile(r"^\t(\S+) => (\S+) (\S+)$", re.MULTILINE)
_LDFLAG = re.compile(r"-X '([\w./-]+)\.(\w+)=([^']*)'")


def test_staging_modules_are_exactly_the_local_replaces() -> None:
    """Only `=> ./staging/...` replaces count; required-only or remote replaces do not."""
    assert staging_modules(UPSTREAM_GO_MOD) == STAGING_IN_SNIPPET


def test_staging_modules_are_sorted_and_unique() -> None:
    """The wrapper is part of the build cache key, so its module list must be stable."""
    extra = "replace (\n\tk8s.io/aaa => ./staging/src/k8s.io/aaa\n\tk8s.io/api => ./staging/x\n)\n"

    assert staging_modules(UPSTREAM_GO_MOD + extra) == ["k8s.io/aaa", *STAGING_IN_SNIPPET]


def test_staging_modules_of_a_go_mod_without_staging() -> None:
    assert staging_modules("module example.com/x\n\ngo 1.25.0\n") == []


@pytest.mark.parametrize(
    ("kubernetes", "staging"),
    [
        ("v1.35.4", "v0.35.4"),
        ("v1.9.0", "v0.9.0"),
        ("v1.36.0-rc.1", "v0.36.0-rc.1"),
        ("v1.36.0-alpha.0", "v0.36.0-alpha.0"),
    ],
)
def test_staging_version_follows_the_release(kubernetes: str, staging: str) -> None:
    """Staging modules are tagged v0.MINOR.PATCH alongside each v1.MINOR.PATCH."""
    assert staging_version(kubernetes) == staging


@pytest.mark.parametrize(
    "bad", ["1.35.4", "v2.35.4", "v1.35", "v1.35.4.1", "latest", "", " v1.35.4"]
)
def test_staging_version_rejects_what_is_not_a_release(bad: str) -> None:
    """A typo in the pinned version should say so, not send `go` after a module that isn't."""
    with pytest.raises(ProbelabError, match="not a Kubernetes release version"):
        staging_version(bad)


def test_wrapper_go_mod_requires_kubernetes_and_pins_every_staging_module() -> None:
    """Each staging module is replaced by its published version of the same release."""
    text = kubernetes_wrapper_go_mod("v1.35.4", STAGING_IN_SNIPPET, "1.25.0")

    assert text.startswith("module probelab.invalid/kubernetes\n")
    assert re.search(r"^go 1\.25\.0$", text, re.MULTILINE)
    assert re.search(r"^require k8s\.io/kubernetes v1\.35\.4$", text, re.MULTILINE)
    replaces = _REPLACE_LINE.findall(text)
    assert [old for old, _, _ in replaces] == STAGING_IN_SNIPPET
    assert all(new == old and version == "v0.35.4" for old, new, version in replaces)


def test_wrapper_go_mod_points_nothing_into_a_staging_tree() -> None:
    """The wrapper exists because ./staging paths do not exist outside upstream's repo."""
    text = kubernetes_wrapper_go_mod("v1.35.4", staging_modules(UPSTREAM_GO_MOD), "1.25.0")

    assert "./staging" not in text
    assert staging_modules(text) == []


def test_wrapper_go_mod_rejects_a_bad_version() -> None:
    with pytest.raises(ProbelabError):
        kubernetes_wrapper_go_mod("1.35.4", STAGING_IN_SNIPPET, "1.25.0")


def test_wrapper_go_mod_takes_upstreams_go_line() -> None:
    """1.36 declares go 1.26.0; a wrapper at an older line would build it with the
    language version and GODEBUG defaults of another release."""
    go = go_directive(UPSTREAM_GO_MOD.replace("go 1.25.0", "go 1.26.0"))
    text = kubernetes_wrapper_go_mod("v1.36.3", STAGING_IN_SNIPPET, go)

    assert go == "1.26.0"
    assert re.search(r"^go 1\.26\.0$", text, re.MULTILINE)
    assert "v0.36.3" in text


def test_go_directive_missing_is_an_error() -> None:
    with pytest.raises(ProbelabError, match="no `go` line"):
        go_directive("module k8s.io/kubernetes\n")


@pytest.mark.parametrize(
    ("older", "newer"),
    [("1.25.0", "go1.26.8"), ("1.26", "1.26.0"), ("go1.9.9", "1.10"), ("1.26.8", "1.27")],
)
def test_go_versions_compare_as_numbers(older: str, newer: str) -> None:
    """`go1.9` is older than `1.10`: compared as numbers, not text."""
    assert version_tuple(older) < version_tuple(newer)


class RecordingToolchains(Toolchains):
    """Hands out a made-up path per Go version asked for, and remembers the asks."""

    def __init__(self) -> None:
        super().__init__(Path("/nonexistent"))
        self.asked: list[str] = []

    def go_for(self, needed: str) -> str:
        self.asked.append(needed)
        return f"/toolchains/go{needed}/bin/go"


def test_a_release_needing_newer_go_switches_toolchain_before_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Switched before `go` would fail halfway with a toolchain message (GOTOOLCHAIN=local)."""
    toolchains = RecordingToolchains()
    builder = Builder(tmp_path, toolchains)
    monkeypatch.setattr(Builder, "_go_version", "go1.26.8\n")

    builder.require_go("1.26.0", "Kubernetes v1.36.3")  # new enough: nothing happens
    assert toolchains.asked == []
    builder.require_go("1.27", "Kubernetes v1.37.2")
    assert toolchains.asked == ["1.27"]
    assert builder._require_go() == "/toolchains/go1.27/bin/go"


def test_version_ldflags_set_the_release_in_both_version_packages() -> None:
    """`kubectl version` reads client-go's package, `/version` component-base's."""
    flags = version_ldflags("v1.35.4", "2026-04-15T18:01:22Z")

    assert flags.split()[:2] == ["-s", "-w"]
    values: dict[str, dict[str, str]] = {}
    for package, key, value in _LDFLAG.findall(flags):
        values.setdefault(package, {})[key] = value
    expected = {
        "gitVersion": "v1.35.4",
        "gitMajor": "1",
        "gitMinor": "35",
        "gitTreeState": "clean",
        "buildDate": "2026-04-15T18:01:22Z",
    }
    assert values == {
        "k8s.io/component-base/version": expected,
        "k8s.io/client-go/pkg/version": expected,
    }


def test_version_ldflags_of_a_prerelease() -> None:
    """The minor is the bare number even when the version carries a pre-release suffix."""
    flags = version_ldflags("v1.36.0-rc.1", "2026-05-01T00:00:00Z")

    assert "-X 'k8s.io/component-base/version.gitMinor=36'" in flags
    assert "-X 'k8s.io/client-go/pkg/version.gitVersion=v1.36.0-rc.1'" in flags


def test_builder_without_go_and_without_a_proxy_says_so_before_any_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No `go` on PATH: a toolchain from the module proxy, and with GOPROXY=off one line."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("GOPROXY", "off")
    builder = Builder(tmp_path / "cache")

    with pytest.raises(ProbelabError, match=r"^GOPROXY=off names no module proxy"):
        builder.kubernetes("v1.35.4")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_builder_without_go_asks_for_the_go_its_own_modules_need(tmp_path: Path) -> None:
    toolchains = RecordingToolchains()
    assert Builder(tmp_path, toolchains)._require_go() == "/toolchains/go1.25.0/bin/go"
    assert toolchains.asked == [OWN_GO]


def test_single_binary_gets_a_stable_name(tmp_path: Path) -> None:
    """`go build -o dir/` names the binary after its package; callers want a fixed name."""
    (tmp_path / "v3").write_bytes(b"\x7fELF")

    path = _single_binary(tmp_path, "etcd")

    assert path == tmp_path / "etcd"
    assert path.read_bytes() == b"\x7fELF"
    assert not (tmp_path / "v3").exists()
    assert _single_binary(tmp_path, "etcd") == path  # a second call finds it


def test_single_binary_refuses_to_guess(tmp_path: Path) -> None:
    (tmp_path / "one").write_text("")
    (tmp_path / "two").write_text("")

    with pytest.raises(ProbelabError, match=r"expected one binary .* found 2"):
        _single_binary(tmp_path, "etcd")


def test_a_second_build_of_one_recipe_waits_and_takes_the_first_ones_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes building one name would share its source folder; the second waits,
    says so, and builds nothing once the first one's result is complete."""
    builder = Builder(tmp_path)
    builder.__dict__["_go_version"] = "go1.26.8"  # no `go` here
    ran: list[list[str]] = []

    def go_run(args: list[str], cwd: Path, what: str) -> str:
        ran.append(list(args))
        return ""

    monkeypatch.setattr(builder, "_go_run", go_run)
    waiting = threading.Event()
    monkeypatch.setattr(locks, "say", lambda message: waiting.set())
    out, _ = builder._cached("thing", "recipe")
    results: list[Path] = []
    with locks.exclusive(tmp_path / "locks" / "thing.lock"):  # the first build, still going
        second = threading.Thread(
            target=lambda: results.append(builder._build("thing", "recipe", "", {}, ["pkg"]))
        )
        second.start()
        assert waiting.wait(timeout=10), "the second build did not say it waits"
        assert results == []
        out.mkdir(parents=True)
        (out / ".complete").write_text("recipe\n")
    second.join(timeout=10)
    assert results == [out]
    assert ran == []


# A `go` that knows its version and otherwise hangs, saying its PID first.
HANGING_GO = """#!/bin/sh
if [ "$1 $2" = "env GOVERSION" ]; then echo go1.26.8; exit 0; fi
echo $$ > {pid_file}
exec sleep 30
"""


class ScriptToolchains(Toolchains):
    """Hands out one script as the `go` of every version."""

    def __init__(self, go: Path) -> None:
        super().__init__(Path("/nonexistent"))
        self.go = go

    def go_for(self, needed: str) -> str:
        return str(self.go)


def hanging_go(tmp_path: Path) -> tuple[ScriptToolchains, Path]:
    pid_file = tmp_path / "go.pid"
    go = tmp_path / "go"
    go.write_text(HANGING_GO.format(pid_file=pid_file))
    go.chmod(0o755)
    return ScriptToolchains(go), pid_file


VERSIONS = Versions(kubernetes="v1.35.4", etcd="v3.6.6", coredns="v1.13.1")


def test_a_stop_kills_the_go_a_builder_runs(tmp_path: Path) -> None:
    toolchains, pid_file = hanging_go(tmp_path)
    stop = threading.Event()
    builder = Builder(tmp_path / "cache", toolchains, stopped_by=stop)

    def stop_once_go_runs() -> None:
        started_pid(pid_file)
        stop.set()

    threading.Thread(target=stop_once_go_runs).start()
    started = time.monotonic()

    with pytest.raises(Stopped):
        builder.etcd(VERSIONS.etcd)  # hangs in `go mod download`
    assert time.monotonic() - started < 5
    assert_gone(started_pid(pid_file))


def test_a_failed_kubernetes_build_stops_the_side_builds_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its error is the one raised, and the etcd build's `go` beside it does not live on."""
    toolchains, pid_file = hanging_go(tmp_path)

    def kubernetes(self: Builder, version: str) -> Path:
        started_pid(pid_file)  # the side build's `go` is running
        raise ProbelabError("building kubernetes failed")

    monkeypatch.setattr(Builder, "kubernetes", kubernetes)
    started = time.monotonic()
    with pytest.raises(ProbelabError, match="building kubernetes failed"):
        Builder(tmp_path / "cache", toolchains).all(VERSIONS)
    assert time.monotonic() - started < 10
    assert_gone(started_pid(pid_file))


def test_all_builds_the_small_programs_beside_kubernetes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """etcd, CoreDNS and pause come from another thread, by a Builder that can be stopped."""
    threads: dict[str, str] = {}

    def built(name: str) -> Callable[..., Path]:
        def build(self: Builder, *version: str) -> Path:
            threads[name] = threading.current_thread().name
            assert (self.stopped_by is not None) == (name != "kubernetes")
            return tmp_path / name

        return build

    for name in ("kubernetes", "etcd", "coredns", "pause"):
        monkeypatch.setattr(Builder, name, built(name))
    binaries = Builder(tmp_path / "cache", RecordingToolchains()).all(VERSIONS)

    assert binaries.etcd == tmp_path / "etcd"
    assert (binaries.kubernetes, binaries.coredns, binaries.pause) == (
        tmp_path / "kubernetes",
        tmp_path / "coredns",
        tmp_path / "pause",
    )
    assert threads["kubernetes"] == threading.current_thread().name
    assert {threads[name] for name in ("etcd", "coredns", "pause")} == {threads["etcd"]}
    assert threads["etcd"].startswith("alongside")
