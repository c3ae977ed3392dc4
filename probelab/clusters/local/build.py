"""Build the local cluster's binaries from the Go module proxy, once per version.

No package ships kubelet or kube-apiserver, and no binary download is reachable, so the
binaries are compiled from published Go modules. `k8s.io/kubernetes` cannot be built as a
plain dependency because its go.mod points every `k8s.io/<staging>` module at a directory
inside its own repository; a small wrapper module replaces each of those with the
published `v0.MINOR.PATCH` of the same release. The list of staging modules is read from
upstream's go.mod, so it follows the version instead of being typed out here.

The wrapper declares upstream's own `go` line, so each release builds with the language
version and GODEBUG defaults it was released with. Results are cached under a key made of
the recipe (versions, Go version, flags); a second `up` with the same key builds nothing.
"""

import contextlib
import functools
import hashlib
import json
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from probelab.alongside import alongside, run_stoppable
from probelab.clusters.local import releases
from probelab.clusters.local.releases import KUBERNETES_MODULE, Request, Versions
from probelab.clusters.local.toolchain import Toolchains, version_tuple
from probelab.errors import ProbelabError
from probelab.locks import exclusive
from probelab.progress import say, step

KUBERNETES_COMMANDS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
)
COREDNS_MODULE = "github.com/coredns/coredns"
OWN_GO = "1.25.0"
"""The `go` line of probelab's own wrapper modules: the oldest Go that builds them."""
# The packages whose variables `kubectl version` and `/version` report.
_VERSION_PACKAGES = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
E2E_PACKAGE = "k8s.io/kubernetes/test/e2e"
AGNHOST_PACKAGE = "k8s.io/kubernetes/test/images/agnhost"
# The CLI of the ginkgo library e2e.test links; the wrapper's module graph picks the same
# version, so the CLI and the suite it drives always agree.
GINKGO_PACKAGE = "github.com/onsi/ginkgo/v2/ginkgo"
_STAGING_REPLACE = re.compile(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", re.MULTILINE)


@dataclass(frozen=True)
class ModuleSource:
    """A downloaded module: its extracted tree, its go.mod and its publication time."""

    dir: Path
    go_mod: str
    time: str


@dataclass(frozen=True)
class Binaries:
    """Where each built program is."""

    kubernetes: Path
    etcd: Path
    coredns: Path
    pause: Path

    def kube(self, command: str) -> Path:
        return self.kubernetes / command


@dataclass(frozen=True)
class SuiteBinaries:
    """Upstream's conformance tooling of one release: the suite, its runner, its server."""

    e2e: Path
    ginkgo: Path
    agnhost: Path
    source: Path  # the release's module tree (image names, spec sources)


def staging_modules(upstream_go_mod: str) -> list[str]:
    """The `k8s.io/<staging>` modules that upstream's go.mod points into its own tree."""
    return sorted(set(_STAGING_REPLACE.findall(upstream_go_mod)))


def staging_version(kubernetes_version: str) -> str:
    """Staging modules are published as v0.MINOR.PATCH for Kubernetes v1.MINOR.PATCH."""
    match = re.fullmatch(r"v1\.(\d+\.\d+(?:-[\w.]+)?)", kubernetes_version)
    if not match:
        raise ProbelabError(f"not a Kubernetes release version: {kubernetes_version!r}")
    return f"v0.{match.group(1)}"


def kubernetes_wrapper_go_mod(version: str, staging: Sequence[str], go: str) -> str:
    """A go.mod that builds k8s.io/kubernetes@version with published staging modules.

    `go` is upstream's own `go` line: it sets the language version and GODEBUG defaults.
    """
    published = staging_version(version)
    replaces = "".join(f"\t{module} => {module} {published}\n" for module in staging)
    return (
        f"module probelab.invalid/kubernetes\n\ngo {go}\n\n"
        f"require {KUBERNETES_MODULE} {version}\n\nreplace (\n{replaces})\n"
    )


def version_ldflags(version: str, build_date: str) -> str:
    """Linker flags that make the binaries report the real release, as upstream's do."""
    major, minor = version.lstrip("v").split(".")[:2]
    values = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": build_date,
    }
    flags = [
        f"-X '{package}.{key}={value}'"
        for package in _VERSION_PACKAGES
        for key, value in values.items()
    ]
    return " ".join(["-s", "-w", *flags])


class Builder:
    """Runs `go` with a fixed environment and caches results by recipe.

    `go` is the one on PATH while it is new enough, else a toolchain from the module proxy
    (`toolchain.Toolchains`, kept next to the build cache). `stopped_by`, once set, kills
    the `go` that runs (`alongside.Stopped`): a Builder in a side thread gets one.
    """

    def __init__(
        self,
        cache_root: Path,
        toolchains: Toolchains | None = None,
        *,
        stopped_by: threading.Event | None = None,
    ) -> None:
        self.cache_root = cache_root
        self._toolchains = toolchains or Toolchains(cache_root.parent / "toolchains")
        self._go: str | None = None
        self.stopped_by = stopped_by

    def _require_go(self) -> str:
        if self._go is None:
            self._go = self._toolchains.go_for(OWN_GO)
        return self._go

    def _env(self) -> dict[str, str]:
        # Never fetch another toolchain (nothing but the module proxy is reachable),
        # and link statically so the binaries need nothing from the host.
        return {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}

    def _go_run(self, args: Sequence[str], cwd: Path, what: str) -> str:
        """`go args` in `cwd`; its stdout, or its error as a ProbelabError.

        In its own process group, killed with its compilers and linkers when `stopped_by`
        is set or this thread is interrupted (Ctrl-C), so no `go` outlives the build.
        """
        argv = [self._require_go(), *args]
        code, out, err = run_stoppable(argv, self.stopped_by, cwd=cwd, env=self._env())
        if code != 0:
            tail = "\n".join((err or out).strip().splitlines()[-25:])
            with contextlib.suppress(ValueError, KeyError, TypeError):  # `-json`: the error inside
                tail = json.loads(out)["Error"]
            raise ProbelabError(f"{what} failed (go {' '.join(args[:2])}):\n{tail}")
        return out

    @functools.cached_property
    def _go_version(self) -> str:
        """Part of every cache key; read once, since every binary looks its key up."""
        self.cache_root.mkdir(parents=True, exist_ok=True)
        return self._go_run(["env", "GOVERSION"], self.cache_root, "reading the Go version")

    def require_go(self, needed: str, what: str) -> None:
        """Switch to a newer toolchain before `go` fails halfway (GOTOOLCHAIN=local) on a
        module whose `go` line is newer than the Go in use."""
        have = self._go_version.strip()
        if version_tuple(needed) > version_tuple(have):
            say(f"{what} needs Go {needed} or newer; `go` here is {have}")
            self._go = self._toolchains.go_for(needed)
            self.__dict__.pop("_go_version", None)  # the cached property, read again

    def module(self, path: str, version: str) -> ModuleSource:
        """Download `path@version` from the module proxy (or find it in the module cache)."""
        self.cache_root.mkdir(parents=True, exist_ok=True)
        info = json.loads(
            self._go_run(
                ["mod", "download", "-json", f"{path}@{version}"],
                self.cache_root,
                f"downloading {path}@{version} from the Go module proxy",
            )
        )
        return ModuleSource(
            Path(info["Dir"]),
            Path(info["GoMod"]).read_text(),
            json.loads(Path(info["Info"]).read_text())["Time"],
        )

    def newest(self, path: str, query: str) -> str:
        """The version a module query picks, e.g. `v1.34`: the newest v1.34.x listed."""
        self.cache_root.mkdir(parents=True, exist_ok=True)
        return self._go_run(
            ["list", "-m", "-f", "{{.Version}}", f"{path}@{query}"],
            self.cache_root,
            f"finding {path}@{query} on the Go module proxy",
        ).strip()

    def versions(self, request: Request) -> Versions:
        """The exact release a request means, with the etcd and CoreDNS it ships with."""
        kubernetes = request.query
        if request.patch is None:
            kubernetes = self.newest(KUBERNETES_MODULE, request.query)
        source = self.module(KUBERNETES_MODULE, kubernetes)
        return releases.components((source.dir / releases.CONSTANTS_FILE).read_text(), kubernetes)

    def _cached(self, name: str, recipe: str) -> tuple[Path, bool]:
        """The output folder for `name` and whether it already holds this recipe's build."""
        key = hashlib.sha256(f"{recipe}\n{self._go_version}".encode()).hexdigest()[:16]
        out = self.cache_root / f"{name}-{key}"
        return out, (out / ".complete").is_file()

    def _build(
        self,
        name: str,
        recipe: str,
        go_mod: str,
        sources: dict[str, str],
        packages: Sequence[str],
        ldflags: str = "-s -w",
        what: str = "",
        tests: Sequence[str] = (),
        needs: tuple[str, str] | None = None,
    ) -> Path:
        """`go build` `packages` (and `go test -c` `tests`) into the cache, once per recipe.

        `needs`: a required (module, version) whose `go` line the Go must meet.
        """
        out, done = self._cached(name, recipe)
        if done:
            return out
        if needs is not None:
            module = self.module(*needs)
            self.require_go(releases.go_directive(module.go_mod), "@".join(needs))
            out, _ = self._cached(name, recipe)  # the key holds the Go version
        # Two processes building one name would share its source folder: one at a time, and
        # the second one finds the first one's result.
        busy = f"another probelab process is building {name}; waiting for it"
        with exclusive(self.cache_root / "locks" / f"{name}.lock", busy):
            if (out / ".complete").is_file():
                return out
            src = self.cache_root / "src" / name
            src.mkdir(parents=True, exist_ok=True)
            (src / "go.mod").write_text(go_mod)
            for filename, text in sources.items():
                (src / filename).write_text(text)
            bin_dir = out / "bin"
            bin_dir.mkdir(parents=True, exist_ok=True)
            flags = ["-mod=mod", "-trimpath", f"-ldflags={ldflags}", "-o", f"{bin_dir}/"]
            with step(what or f"building {name}"):
                self._go_run(["build", *flags, *packages], src, f"building {name}")
                if tests:
                    # -vet=off: vet checks upstream's code, which is not ours to fix.
                    self._go_run(
                        ["test", "-c", "-vet=off", *flags, *tests], src, f"building {name}"
                    )
            (out / ".complete").write_text(recipe + "\n")
            return out

    def kubernetes(self, version: str) -> Path:
        """kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl."""
        return self._kubernetes_commands(
            f"kubernetes-{version}",
            version,
            KUBERNETES_COMMANDS,
            f"building Kubernetes {version} from the Go module proxy (about 5 min cold)",
        )

    def kubeadm(self, version: str) -> Path:
        """kubeadm alone, which only kind's nodes need: a recipe of its own, so adding it
        never invalidates the local cluster's cached binaries."""
        folder = self._kubernetes_commands(
            f"kubeadm-{version}", version, ("kubeadm",), f"building kubeadm {version}"
        )
        return folder / "kubeadm"

    def _kubernetes_commands(
        self, name: str, version: str, commands: Sequence[str], what: str
    ) -> Path:
        """Commands of `k8s.io/kubernetes@version`, built with the published staging modules."""
        recipe = f"kubernetes {version} {' '.join(commands)}"
        out, done = self._cached(name, recipe)
        if done:
            return out / "bin"
        go_mod, ldflags, _ = self._kubernetes_wrapper(version)
        out = self._build(
            name,
            recipe,
            go_mod,
            {},
            [f"{KUBERNETES_MODULE}/cmd/{command}" for command in commands],
            ldflags,
            what,
        )
        return out / "bin"

    def _kubernetes_wrapper(self, version: str) -> tuple[str, str, Path]:
        """The wrapper go.mod for `version`, linker flags stamping the release, its tree."""
        source = self.module(KUBERNETES_MODULE, version)
        go = releases.go_directive(source.go_mod)
        self.require_go(go, f"Kubernetes {version}")
        return (
            kubernetes_wrapper_go_mod(version, staging_modules(source.go_mod), go),
            version_ldflags(version, source.time),
            source.dir,
        )

    def kubernetes_tests(self, version: str) -> SuiteBinaries:
        """e2e.test, the ginkgo CLI and agnhost of `version`, from the cluster's wrapper module.

        The same go.mod and flags as the cluster's binaries, so the packages both link are
        already in GOCACHE and the suite is the very release the cluster runs.
        """
        name = f"kubernetes-tests-{version}"
        recipe = f"kubernetes-tests {version} {E2E_PACKAGE} {GINKGO_PACKAGE} {AGNHOST_PACKAGE}"
        go_mod, ldflags, source = self._kubernetes_wrapper(version)
        out = self._build(
            name,
            recipe,
            go_mod,
            {},
            [GINKGO_PACKAGE, AGNHOST_PACKAGE],
            ldflags,
            f"building e2e.test, ginkgo and agnhost of Kubernetes {version} (about 15 min cold)",
            tests=[E2E_PACKAGE],
        )
        bin_dir = out / "bin"
        return SuiteBinaries(bin_dir / "e2e.test", bin_dir / "ginkgo", bin_dir / "agnhost", source)

    def kind(self, version: str) -> Path:
        """The kind CLI, `sigs.k8s.io/kind@version` from the module proxy."""
        return self._module_program("kind", "sigs.k8s.io/kind", version, "sigs.k8s.io/kind")

    def crictl(self, version: str) -> Path:
        """crictl, which `kind export logs` runs inside every node."""
        return self._module_program(
            "crictl", "sigs.k8s.io/cri-tools", version, "sigs.k8s.io/cri-tools/cmd/crictl"
        )

    def etcd(self, version: str) -> Path:
        return self._module_program(
            "etcd", "go.etcd.io/etcd/server/v3", version, "go.etcd.io/etcd/server/v3"
        )

    def _module_program(self, name: str, module: str, version: str, package: str) -> Path:
        """One program of a published module, built as its release pins its dependencies."""
        go_mod = f"module probelab.invalid/{name}\n\ngo {OWN_GO}\n\nrequire {module} {version}\n"
        out = self._build(
            f"{name}-{version}",
            f"{name} {version}",
            go_mod,
            {},
            [package],
            what=f"building {name} {version} from the Go module proxy",
            needs=(module, version),
        )
        return _single_binary(out / "bin", name)

    def _own_program(self, name: str, requires: tuple[str, str] | None = None) -> Path:
        """Build one of probelab's own Go programs shipped in `go/<name>/`."""
        source = (resources.files("probelab.clusters.local") / "go" / name / "main.go").read_text()
        extra_require = f"\nrequire {requires[0]} {requires[1]}\n" if requires else ""
        go_mod = f"module probelab.invalid/{name}\n\ngo {OWN_GO}\n{extra_require}"
        out = self._build(
            name,
            f"{name} {extra_require}\n{source}",
            go_mod,
            {"main.go": source},
            ["."],
            what=f"building {name}",
            needs=requires,
        )
        return _single_binary(out / "bin", name)

    def coredns(self, version: str) -> Path:
        return self._own_program("coredns", (COREDNS_MODULE, version))

    def pause(self) -> Path:
        return self._own_program("pause")

    def all(self, versions: Versions) -> Binaries:
        """Every binary the local cluster runs: Kubernetes in this thread, etcd, CoreDNS and
        pause in one beside it (`alongside`), since the Kubernetes build leaves cores idle
        while it downloads modules and links."""
        with alongside(functools.partial(self._small_programs, versions)) as beside:
            kubernetes = self.kubernetes(versions.kubernetes)
            etcd, coredns, pause = beside.result()
        return Binaries(kubernetes=kubernetes, etcd=etcd, coredns=coredns, pause=pause)

    def _small_programs(self, versions: Versions, stop: threading.Event) -> tuple[Path, Path, Path]:
        """etcd, CoreDNS and pause, by a Builder of their own: `stop` kills its `go`, and
        its toolchain switches (`require_go`) leave this thread's Go alone."""
        side = Builder(self.cache_root, self._toolchains, stopped_by=stop)
        return side.etcd(versions.etcd), side.coredns(versions.coredns), side.pause()


def _single_binary(bin_dir: Path, name: str) -> Path:
    """`go build -o dir/` names a binary after its package; give it a stable name."""
    wanted = bin_dir / name
    if not wanted.exists():
        built = [path for path in bin_dir.iterdir() if path.is_file()]
        if len(built) != 1:
            raise ProbelabError(f"expected one binary in {bin_dir}, found {len(built)}")
        built[0].rename(wanted)
    return wanted
