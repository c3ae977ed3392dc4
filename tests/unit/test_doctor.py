"""`probelab doctor`, one broken prerequisite at a time, with no cluster and no engine.

Each break is real, not mocked: a PATH without kind, a DOCKER_HOST whose socket nobody
listens on, a free-disk threshold above what the disk has, a kubeconfig whose server port
is closed, a cgroup root with or without `cgroup.controllers`.
"""

import json
import logging
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from probelab.cli import main
from probelab.doctor import (
    Finding,
    Status,
    Target,
    check_cgroup,
    check_cluster,
    check_disk,
    check_docker,
    check_kind,
    check_kubectl,
    engine_address,
    failed,
    minor,
)


def _tool(directory: Path, name: str, script: str) -> Path:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH with nothing but this directory (the fake tools use only shell builtins)."""
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", str(directory))
    return directory


@pytest.fixture
def dead_socket(tmp_path: Path) -> Iterator[str]:
    """A unix socket file with no listener: connecting is refused."""
    path = tmp_path / "docker.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
    yield f"unix://{path}"


@pytest.fixture
def unreachable_kubeconfig(tmp_path: Path) -> Path:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
                "contexts": [{"name": "lab", "context": {"cluster": "c", "user": "u"}}],
            }
        )
    )
    return path


def test_kind_missing_from_path_fails_only_when_kind_is_chosen(bin_dir: Path) -> None:
    required = check_kind(required=True)
    assert required.status is Status.FAIL
    assert required.detail == "kind is not on PATH"
    assert required.fix and "kind.sigs.k8s.io" in required.fix
    optional = check_kind(required=False)
    assert optional.status is Status.WARN
    assert "not needed" in optional.detail


def test_kind_on_path_reports_its_own_version(bin_dir: Path) -> None:
    _tool(bin_dir, "kind", 'echo "kind v0.33.0 go1.25.1 linux/amd64"')
    finding = check_kind(required=True)
    assert finding.status is Status.OK
    assert finding.detail.startswith("kind v0.33.0 go1.25.1 linux/amd64")


def test_kind_that_cannot_run_is_reported(bin_dir: Path) -> None:
    _tool(bin_dir, "kind", "exit 3")
    finding = check_kind(required=True)
    assert finding.status is Status.FAIL
    assert "version` fails" in finding.detail


def test_dead_docker_host_fails_with_the_address(
    dead_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", dead_socket)
    assert engine_address("local") == dead_socket  # DOCKER_HOST wins over the local engine
    finding, root = check_docker(engine_address("kind"))
    assert finding.status is Status.FAIL
    assert dead_socket in finding.detail
    assert finding.fix and "DOCKER_HOST" in finding.fix
    assert root is None


def test_local_cluster_uses_its_own_engine_without_docker_host(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("PROBELAB_HOME", str(tmp_path))
    assert engine_address("local") == f"unix://{tmp_path}/run/docker.sock"
    assert engine_address("kind") is None


def test_disk_threshold_above_what_is_free_fails(tmp_path: Path) -> None:
    assert check_disk(tmp_path, 0.001).status is Status.OK
    finding = check_disk(tmp_path, 10**9)
    assert finding.status is Status.FAIL
    assert "needs 1e+09 GiB" in finding.detail
    assert finding.fix and "PROBELAB_HOME" in finding.fix


def test_disk_of_a_path_not_made_yet_is_its_parent(tmp_path: Path) -> None:
    finding = check_disk(tmp_path / "not" / "yet", 0.001)
    assert f"under {tmp_path}" in finding.detail


def test_unreachable_kubeconfig_fails_with_how_to_check(unreachable_kubeconfig: Path) -> None:
    finding, version = check_cluster(Target("existing", unreachable_kubeconfig, "lab"))
    assert finding.status is Status.FAIL
    assert "unreachable" in finding.detail
    assert finding.fix and "kubectl --context lab get --raw /version" in finding.fix
    assert version is None


def test_existing_needs_a_named_context(unreachable_kubeconfig: Path) -> None:
    finding, _ = check_cluster(Target("existing", unreachable_kubeconfig, None))
    assert finding.status is Status.FAIL
    assert finding.fix and "--kube-context" in finding.fix


def test_unknown_context_fails(unreachable_kubeconfig: Path) -> None:
    finding, _ = check_cluster(Target("existing", unreachable_kubeconfig, "nope"))
    assert finding.status is Status.FAIL
    assert "cannot load context 'nope'" in finding.detail


def test_kind_cluster_check_without_kind_fails(bin_dir: Path) -> None:
    finding, _ = check_cluster(Target("kind"))
    assert finding.status is Status.FAIL
    assert "kind is not on PATH" in finding.detail


def test_kind_cluster_not_created_yet_is_fine(bin_dir: Path) -> None:
    _tool(bin_dir, "kind", "exit 0")  # `kind get clusters` lists nothing
    finding, _ = check_cluster(Target("kind"))
    assert finding.status is Status.OK
    assert "does not exist yet" in finding.detail


def test_unreachable_kind_cluster_fails_and_leaves_no_kubeconfig_behind(
    bin_dir: Path, unreachable_kubeconfig: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("PROBELAB_KIND_HOME", str(state))
    kubeconfig = tmp_path / "kind-kubeconfig"
    kubeconfig.write_text(unreachable_kubeconfig.read_text().replace("lab", "kind-probelab"))
    _tool(
        bin_dir,
        "kind",
        'case "$1 $2" in\n'
        '  "get clusters") echo probelab ;;\n'
        f'  "get kubeconfig") while IFS= read -r line; do echo "$line"; done < {kubeconfig} ;;\n'
        "esac",
    )
    finding, _ = check_cluster(Target("kind"))
    assert finding.status is Status.FAIL
    assert "unreachable" in finding.detail
    assert finding.fix == "kind delete cluster --name=probelab; the lab recreates it"
    assert not state.exists()


def test_cgroup_versions(tmp_path: Path) -> None:
    v1 = tmp_path / "v1"
    v1.mkdir()
    assert check_cgroup("local", v1).status is Status.OK
    kind_on_v1 = check_cgroup("kind", v1)
    assert kind_on_v1.status is Status.WARN
    assert kind_on_v1.fix and "cgroup v2" in kind_on_v1.fix
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cgroup.controllers").write_text("cpu memory\n")
    assert check_cgroup("kind", v2) == Finding("cgroup", Status.OK, f"v2 ({v2})")
    assert check_cgroup("kind", tmp_path / "absent").status is Status.FAIL


def _kubectl(bin_dir: Path, version: str) -> None:
    document = json.dumps({"clientVersion": {"gitVersion": version}})
    _tool(bin_dir, "kubectl", f"echo '{document}'")


def test_kubectl_too_far_from_the_server_warns(bin_dir: Path) -> None:
    _kubectl(bin_dir, "v1.32.4")
    finding = check_kubectl("v1.35.4", suggestion="use /x/kubectl")
    assert finding.status is Status.WARN
    assert "3 minor versions" in finding.detail
    assert finding.fix == "use /x/kubectl"
    assert check_kubectl("v1.33.0").status is Status.OK


def test_kubectl_missing_warns(bin_dir: Path) -> None:
    finding = check_kubectl("v1.35.4")
    assert finding.status is Status.WARN
    assert finding.detail == "kubectl is not on PATH"


def test_minor_of_versions() -> None:
    assert minor("v1.35.4") == 35
    assert minor("v1.32.4-dispatcher") == 32
    assert minor("garbage") is None


def test_failed_only_on_fail() -> None:
    assert not failed([Finding("a", Status.OK, ""), Finding("b", Status.WARN, "")])
    assert failed([Finding("a", Status.OK, ""), Finding("b", Status.FAIL, "")])


def test_render_puts_the_fix_under_the_finding() -> None:
    text = Finding("disk", Status.FAIL, "1.0 GiB free", "free space").render()
    assert text.splitlines() == ["FAIL  disk       1.0 GiB free", "      fix: free space"]


@pytest.fixture
def _keep_logging_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    """`main` configures logging for the process; undo that after the test."""
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    probelab = logging.getLogger("probelab")
    monkeypatch.setattr(probelab, "filters", list(probelab.filters))


@pytest.mark.usefixtures("_keep_logging_as_it_was")
def test_command_exits_1_and_lists_every_check_when_something_fails(
    bin_dir: Path,
    dead_socket: str,
    unreachable_kubeconfig: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DOCKER_HOST", dead_socket)
    argv = ["doctor", "--cluster=existing", "--kube-context=lab"]
    status = main([*argv, f"--kubeconfig={unreachable_kubeconfig}"])
    out = capsys.readouterr().out
    assert status == 1
    checks = [line.split()[1] for line in out.splitlines() if not line.startswith(" ")]
    assert checks == ["docker", "kind", "kubectl", "cgroup", "disk", "cluster"]
    assert out.count("FAIL") == 2  # the engine and the cluster; the rest is not broken
