"""Preflight for the lab: what this machine offers, each shortcoming with its fix.

Every check looks at the real thing (the Docker engine answers a ping, `kind version`
runs, the API server answers `/version`) and reports what it saw; nothing is assumed from
the presence of a file alone. A check never changes the machine. Findings are `ok`,
`warn` (the lab runs, something a student will trip over) or `FAIL` (the lab cannot run).
"""

import enum
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from probelab import kube
from probelab.clusters.kind import INSTALL_HELP, KindCluster, KindSettings
from probelab.clusters.local.config import LocalClusterConfig
from probelab.docker_engine import docker_client
from probelab.errors import ProbelabError

CGROUP_ROOT = Path("/sys/fs/cgroup")
KUBECTL_SKEW = 1  # kubectl is supported within one minor version of the API server
KUBECTL_HELP = "https://kubernetes.io/docs/tasks/tools/#kubectl"
_MINOR = re.compile(r"^v?1\.(\d+)")


class Status(enum.Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str
    fix: str | None = None

    def render(self) -> str:
        line = f"{self.status.value:<4}  {self.check:<10} {self.detail}"
        return f"{line}\n      fix: {self.fix}" if self.fix else line


@dataclass(frozen=True)
class Target:
    """The cluster the lab would run on, resolved from `--cluster` and friends."""

    provider: str
    kubeconfig: Path | None = None
    context: str | None = None


def minor(version: str) -> int | None:
    """The minor number of a `v1.MINOR...` version string."""
    match = _MINOR.match(version)
    return int(match.group(1)) if match else None


def _output(command: list[str]) -> str | None:
    """stdout of a short command, or None when it cannot run or fails."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def engine_address(provider: str) -> str | None:
    """Where images are built: `DOCKER_HOST` if set; else the local cluster's own engine."""
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    if provider == "local":
        return f"unix://{LocalClusterConfig().layout.docker_socket}"
    return None


def check_docker(address: str | None) -> tuple[Finding, str | None]:
    """Whether the engine answers; also its data directory, for the disk check."""
    try:
        engine = docker_client(address)
    except ProbelabError as error:
        fix = (
            "start it (`sudo .venv/bin/probelab cluster up` starts the local cluster's own), "
            "or point DOCKER_HOST at a running engine"
        )
        return Finding("docker", Status.FAIL, str(error), fix), None
    try:
        info = engine.info()
    finally:
        engine.close()
    where = address or "the default socket"
    detail = f"engine {info.get('ServerVersion', '?')} answers at {where}"
    return Finding("docker", Status.OK, detail), info.get("DockerRootDir")


def check_kind(required: bool) -> Finding:
    path = shutil.which("kind")
    version = _output([path, "version"]) if path else None
    if version:
        return Finding("kind", Status.OK, f"{version.strip()} ({path})")
    problem = f"`{path} version` fails" if path else "kind is not on PATH"
    if required:
        return Finding("kind", Status.FAIL, problem, f"install kind: {INSTALL_HELP}")
    return Finding(
        "kind",
        Status.WARN,
        f"{problem}; not needed for this cluster",
        f"to run labs on kind, install it: {INSTALL_HELP}",
    )


def check_kubectl(server_version: str | None, *, suggestion: str | None = None) -> Finding:
    """kubectl is for the student's own commands; its skew against the server matters."""
    path = shutil.which("kubectl")
    text = _output([path, "version", "--client", "-o", "json"]) if path else None
    if not text:
        problem = f"`{path} version --client` fails" if path else "kubectl is not on PATH"
        return Finding("kubectl", Status.WARN, problem, suggestion or f"install: {KUBECTL_HELP}")
    client_version = str(json.loads(text).get("clientVersion", {}).get("gitVersion", "?"))
    detail = f"{client_version} ({path})"
    client_minor = minor(client_version)
    server_minor = minor(server_version) if server_version else None
    if client_minor is None or server_minor is None:
        return Finding("kubectl", Status.OK, f"{detail}; server version unknown, skew unchecked")
    skew = abs(client_minor - server_minor)
    if skew > KUBECTL_SKEW:
        return Finding(
            "kubectl",
            Status.WARN,
            f"{detail} is {skew} minor versions from the server's {server_version} "
            f"(supported: {KUBECTL_SKEW})",
            suggestion or f"install kubectl 1.{server_minor}: {KUBECTL_HELP}",
        )
    return Finding("kubectl", Status.OK, f"{detail}, within {KUBECTL_SKEW} of {server_version}")


def check_cgroup(provider: str, root: Path = CGROUP_ROOT) -> Finding:
    """cgroup v2 has `cgroup.controllers` at its root; v1 mounts one hierarchy per controller."""
    if (root / "cgroup.controllers").exists():
        return Finding("cgroup", Status.OK, f"v2 ({root})")
    if not root.is_dir():
        return Finding("cgroup", Status.FAIL, f"no cgroup filesystem at {root}", "mount cgroups")
    if provider == "local":
        return Finding("cgroup", Status.OK, "v1; the local cluster's kubelet sets failCgroupV1")
    return Finding(
        "cgroup",
        Status.WARN,
        "v1: kubelet 1.35 and later refuses to start on it by default",
        "boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1), or use --cluster=local",
    )


def check_disk(path: Path, min_free_gib: float) -> Finding:
    existing = next(p for p in (path, *path.parents) if p.exists())
    free_gib = shutil.disk_usage(existing).free / 2**30
    detail = f"{free_gib:.1f} GiB free under {existing}"
    if free_gib < min_free_gib:
        return Finding(
            "disk",
            Status.FAIL,
            f"{detail}; the lab needs {min_free_gib:g} GiB",
            "free space there (`docker system prune` removes unused images), or move the "
            "state (PROBELAB_HOME for the local cluster) to a larger disk",
        )
    return Finding("disk", Status.OK, f"{detail} (needs {min_free_gib:g})")


def resolve(target: Target, scratch: Path) -> tuple[Target, str | None]:
    """Fill in the kubeconfig and context each provider uses; or why there is none yet.

    A kind cluster's kubeconfig is written into `scratch`, not probelab's state.
    """
    if target.provider == "local":
        config = LocalClusterConfig()
        return Target("local", config.layout.kubeconfig, config.context), None
    if target.provider == "kind":
        settings = KindSettings.from_env()
        cluster = KindCluster(settings)
        if not cluster.exists():
            return target, f"kind cluster {settings.name} does not exist yet; the lab creates it"
        kubeconfig = cluster.write_kubeconfig(scratch / "kubeconfig")
        return Target("kind", kubeconfig, settings.context), None
    return target, None


def check_cluster(target: Target) -> tuple[Finding, str | None]:
    """Whether the API server answers; its version, for the kubectl skew."""
    if target.provider == "existing" and not target.context:
        fix = "name the context: --kube-context=NAME (the current one is never used silently)"
        return Finding("cluster", Status.FAIL, "--cluster=existing without a context", fix), None
    with tempfile.TemporaryDirectory(prefix="probelab-doctor-") as scratch:
        try:
            resolved, pending = resolve(target, Path(scratch))
        except ProbelabError as error:
            fix = f"install kind: {INSTALL_HELP}"
            return Finding("cluster", Status.FAIL, str(error), fix), None
        if pending:
            return Finding("cluster", Status.OK, pending), None
        return _reach(resolved)


def _reach(resolved: Target) -> tuple[Finding, str | None]:
    """The API server's `/version` through `resolved`; a failure's fix fits the provider."""
    fixes = {
        "local": "sudo .venv/bin/probelab cluster up",
        "kind": f"kind delete cluster --name={KindSettings.from_env().name}; the lab recreates it",
    }
    fix = fixes.get(
        resolved.provider,
        f"check the server and credentials of context {resolved.context!r} "
        f"(`kubectl --context {resolved.context} get --raw /version`)",
    )
    try:
        api = kube.api_client(resolved.kubeconfig, resolved.context)
    except ProbelabError as error:
        return Finding("cluster", Status.FAIL, str(error), fix), None
    try:
        version = kube.check_reachable(api)
    except ProbelabError as error:
        return Finding("cluster", Status.FAIL, str(error), fix), None
    finally:
        api.close()
    detail = f"{resolved.provider} cluster answers: {version} at {api.configuration.host}"
    return Finding("cluster", Status.OK, detail), version


def examine(
    target: Target,
    *,
    min_free_gib: float | None = None,
    cgroup_root: Path = CGROUP_ROOT,
    disk_path: Path | None = None,
) -> list[Finding]:
    """Every finding for running the lab on `target`, in the order a person fixes them."""
    docker, docker_root = check_docker(engine_address(target.provider))
    cluster, server_version = check_cluster(target)
    local = LocalClusterConfig()
    suggestion = None
    if target.provider == "local" and (local.layout.bin / "kubectl").exists():
        suggestion = f"use the local cluster's own: {local.layout.bin / 'kubectl'}"
    if disk_path is None:
        disk_path = local.home if target.provider == "local" else Path(docker_root or "/")
    return [
        docker,
        check_kind(required=target.provider == "kind"),
        check_kubectl(server_version, suggestion=suggestion),
        check_cgroup(target.provider, cgroup_root),
        check_disk(disk_path, local.min_free_disk_gib if min_free_gib is None else min_free_gib),
        cluster,
    ]


def failed(findings: list[Finding]) -> bool:
    return any(f.status is Status.FAIL for f in findings)
