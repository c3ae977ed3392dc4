"""The kind node made here: its files, containerd edits, CNI, guard rules and config.

kind's base files are stood in for by a small tree shaped like the module's
`images/base/files`; nothing here runs Docker, Go or iptables.
"""

from pathlib import Path

import pytest

from probelab.clusters.kind_network import bridge_name, guard_rules
from probelab.clusters.kind_node.layout import (
    NODE_POD_RANGE,
    POD_SUBNET,
    cni_config,
    containerd_config,
    kind_base_files,
    node_files,
    node_links,
    runtime_spec,
)
from probelab.errors import ProbelabError

# The lines of kind v0.33.0's containerd config that the node changes, and one it keeps.
KIND_CONTAINERD = """version = 2
[plugins."io.containerd.grpc.v1.cri"]
  # use fixed sandbox image
  sandbox_image = "registry.k8s.io/pause:3.10"
  restrict_oom_score_adj = false
"""


@pytest.fixture
def kind_module(tmp_path: Path) -> Path:
    files = tmp_path / "kind" / "images" / "base" / "files"
    for relative, text in {
        "usr/local/bin/entrypoint": "#!/bin/bash\n",
        "kind/bin/mount-product-files.sh": "#!/bin/bash\n",
        "etc/containerd/config.toml": KIND_CONTAINERD,
        "etc/systemd/system/kubelet.service": "[Service]\n",
    }.items():
        (files / relative).parent.mkdir(parents=True, exist_ok=True)
        (files / relative).write_text(text)
    return tmp_path / "kind"


def test_kind_files_keep_their_dockerfile_modes(kind_module: Path) -> None:
    modes = {f.path: f.mode for f in kind_base_files(kind_module)}
    assert modes == {
        "/usr/local/bin/entrypoint": 0o755,
        "/kind/bin/mount-product-files.sh": 0o755,
        "/etc/containerd/config.toml": 0o644,
        "/etc/systemd/system/kubelet.service": 0o644,
    }


def test_not_a_kind_module_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ProbelabError, match="not a kind module"):
        kind_base_files(tmp_path)


def test_containerd_gets_the_nodes_pause_image_and_a_clamped_oom_score() -> None:
    text = containerd_config(KIND_CONTAINERD, "probelab.invalid/pause:1")
    assert 'sandbox_image = "probelab.invalid/pause:1"' in text
    assert "registry.k8s.io/pause" not in text
    assert "restrict_oom_score_adj = true" in text
    assert "# use fixed sandbox image" in text, "the rest of kind's file is kept"


def test_a_kind_release_that_moved_a_setting_fails_loudly() -> None:
    with pytest.raises(ProbelabError, match="restrict_oom_score_adj"):
        containerd_config(KIND_CONTAINERD.replace("restrict_oom", "other"), "p:1")
    with pytest.raises(ProbelabError, match="sandbox_image"):
        containerd_config("version = 2\n", "p:1")


def test_node_files_add_binaries_version_and_network(kind_module: Path, tmp_path: Path) -> None:
    kubelet = tmp_path / "kubelet"
    kubelet.write_bytes(b"\x7fELF")
    files = {f.path: f for f in node_files(kind_module, {"kubelet": kubelet}, "v1.35.4", "p:1")}
    assert files["/usr/bin/kubelet"].mode == 0o755
    assert files["/kind/version"].data == b"v1.35.4"
    assert (
        b"OOMScoreAdjust=0"
        in files["/etc/systemd/system/containerd.service.d/10-probelab.conf"].data
    )
    assert b'"p:1"' in files["/etc/containerd/config.toml"].data
    assert "/etc/cni/net.d/10-probelab.conflist" in files


def test_pods_get_the_first_node_range_of_kinds_pod_subnet() -> None:
    ipam = cni_config()["plugins"][0]["ipam"]  # type: ignore[index]
    assert ipam["ranges"] == [[{"subnet": NODE_POD_RANGE}]]
    assert NODE_POD_RANGE.split("/")[0] == POD_SUBNET.split("/")[0]


def test_links_point_kinds_paths_at_debians() -> None:
    links = node_links()
    assert links["/usr/local/bin/containerd"] == "/usr/bin/containerd"
    assert links["/opt/cni/bin/bridge"] == "/usr/lib/cni/bridge"


def test_runtime_spec_hooks_kinds_product_files_and_drops_rlimits() -> None:
    spec = runtime_spec({"process": {"rlimits": [{"type": "RLIMIT_NOFILE"}], "cwd": "/"}})
    assert spec["hooks"] == {"createContainer": [{"path": "/kind/bin/mount-product-files.sh"}]}
    assert spec["process"] == {"cwd": "/"}


def test_guard_accepts_the_bridge_to_itself_and_refuses_the_rest() -> None:
    rules = guard_rules("br-0123456789ab")["PROBELAB-KIND"]
    assert rules[0] == ["-i", "br-0123456789ab", "-o", "br-0123456789ab", "-j", "ACCEPT"]
    assert [rule[:2] for rule in rules[1:]] == [
        ["-i", "br-0123456789ab"],
        ["-i", "br-0123456789ab"],
        ["-o", "br-0123456789ab"],
        ["-o", "br-0123456789ab"],
    ]
    assert all("REJECT" in rule for rule in rules[1:])
    assert [rule[-1] for rule in rules[1:3]] == ["tcp-reset", "icmp-net-prohibited"]


def test_bridge_name_follows_docker() -> None:
    assert bridge_name({"Id": "0123456789abcdef", "Options": {}}) == "br-0123456789ab"
    named = {"Id": "x", "Options": {"com.docker.network.bridge.name": "kind0"}}
    assert bridge_name(named) == "kind0"
