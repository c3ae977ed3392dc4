"""`probelab doctor` on this machine: each finding against what the machine really has.

The session's own cluster is the target (named as an existing context, so every check is
independent of the others). Each finding is compared with a fact read another way; then
one prerequisite at a time is broken (a dead DOCKER_HOST, a PATH without kind or kubectl,
a disk threshold above what is free, a kubeconfig whose server is closed) and exactly that
finding must change, while the machine itself is left alone.
"""

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
import yaml
from kubernetes import client

from probelab import kube
from probelab.clusters.base import ClusterHandle
from probelab.doctor import CGROUP_ROOT, Finding, Status, Target, examine, minor


@pytest.fixture
def target(cluster: ClusterHandle, monkeypatch: pytest.MonkeyPatch) -> Target:
    if cluster.docker_host:
        monkeypatch.setenv("DOCKER_HOST", cluster.docker_host)
    return Target("existing", cluster.kubeconfig, cluster.context)


def _by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {finding.check: finding for finding in findings}


def test_each_finding_matches_the_machine(
    target: Target, cluster: ClusterHandle, kube_api: client.ApiClient
) -> None:
    found = _by_check(examine(target))
    assert list(found) == ["docker", "kind", "kubectl", "cgroup", "disk", "cluster"]

    engine = docker.from_env()
    try:
        assert engine.ping()
        version = engine.version()["Version"]
        docker_root = engine.info()["DockerRootDir"]
    finally:
        engine.close()
    assert found["docker"].status is Status.OK
    assert version in found["docker"].detail

    server = kube.check_reachable(kube_api)
    assert found["cluster"].status is Status.OK
    assert server in found["cluster"].detail

    kind = shutil.which("kind")
    assert (found["kind"].status is Status.OK) == (kind is not None)

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        assert found["kubectl"].detail == "kubectl is not on PATH"
    else:
        raw = subprocess.run(
            [kubectl, "version", "--client", "-o", "json"], capture_output=True, check=True
        ).stdout
        client_version = json.loads(raw)["clientVersion"]["gitVersion"]
        assert client_version in found["kubectl"].detail
        client_minor, server_minor = minor(client_version), minor(server)
        assert client_minor is not None and server_minor is not None
        too_far = abs(client_minor - server_minor) > 1
        assert (found["kubectl"].status is Status.WARN) == too_far

    v2 = (CGROUP_ROOT / "cgroup.controllers").exists()
    assert found["cgroup"].detail.startswith("v2" if v2 else "v1")

    free_gib = shutil.disk_usage(docker_root).free / 2**30
    reported = float(found["disk"].detail.split(" GiB")[0])
    assert abs(reported - free_gib) < 0.5


Breaker = Callable[[Path, pytest.MonkeyPatch], float | None]
"""Breaks one prerequisite; returns the free-disk threshold to ask for, if it changes it."""


def _dead_docker_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> float | None:
    path = tmp_path / "dead.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    return None


def _path_without(command: str) -> Breaker:
    def breaker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> float | None:
        if shutil.which(command) is None:
            pytest.skip(f"{command} is not on PATH here to begin with")
        # Each PATH directory holding `command` is replaced by a shadow of links to
        # everything else in it, so no other tool goes missing with it.
        entries = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
        for index, directory in enumerate(entries):
            if (Path(directory) / command).exists():
                shadow = tmp_path / f"path-{index}"
                shadow.mkdir()
                for item in Path(directory).iterdir():
                    if item.name != command:
                        (shadow / item.name).symlink_to(item)
                entries[index] = str(shadow)
        monkeypatch.setenv("PATH", os.pathsep.join(entries))
        assert shutil.which(command) is None
        return None

    return breaker


def _disk_threshold_above_free(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> float | None:
    return 10.0**9


BREAKS: dict[str, tuple[Breaker, Status]] = {
    "docker": (_dead_docker_host, Status.FAIL),
    "kind": (_path_without("kind"), Status.WARN),
    "kubectl": (_path_without("kubectl"), Status.WARN),
    "disk": (_disk_threshold_above_free, Status.FAIL),
}


@pytest.mark.parametrize("broken", sorted(BREAKS))
def test_breaking_one_prerequisite_changes_only_its_finding(
    broken: str, target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    baseline = _by_check(examine(target))
    breaker, expected = BREAKS[broken]
    threshold = breaker(tmp_path, monkeypatch)
    after = _by_check(examine(target, min_free_gib=threshold))
    assert after[broken].status is expected
    assert after[broken].detail != baseline[broken].detail
    assert after[broken].fix
    changed = {name for name in after if after[name].status is not baseline[name].status}
    assert changed <= {broken}


def test_unreachable_kubeconfig_fails_only_the_cluster(target: Target, tmp_path: Path) -> None:
    assert target.kubeconfig is not None
    config = yaml.safe_load(target.kubeconfig.read_text())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    for entry in config["clusters"]:
        entry["cluster"]["server"] = f"https://127.0.0.1:{closed}"
    broken = tmp_path / "kubeconfig"
    broken.write_text(yaml.safe_dump(config))
    baseline = _by_check(examine(target))
    after = _by_check(examine(Target("existing", broken, target.context)))
    assert after["cluster"].status is Status.FAIL
    assert "unreachable" in after["cluster"].detail
    assert after["docker"].status is baseline["docker"].status
    assert after["disk"].status is baseline["disk"].status
