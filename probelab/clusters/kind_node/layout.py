"""What goes into a kind node made here, file by file: kind's own files and probelab's.

kind's node-image contract is the file layout of its base image plus what its build step
adds. The base image's files (entrypoint, systemd units, kubelet drop-ins, containerd's
config) are taken unchanged from the `sigs.k8s.io/kind` module the kind binary is built
from, so the node matches that kind release; only the few settings this machine needs are
changed, each checked so a kind release that moved them fails loudly instead of silently.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from probelab.errors import ProbelabError

# Where kind's base image keeps the files it copies into every node.
KIND_FILES = Path("images/base/files")
EXECUTABLE_DIRS = ("usr/local/bin", "kind/bin")
# Debian installs these where kind's units and containerd config do not look.
DEBIAN_LINKS = {
    "/usr/local/bin/containerd": "/usr/bin/containerd",
    "/usr/local/bin/ctr": "/usr/bin/ctr",
    "/usr/local/sbin/runc": "/usr/sbin/runc",
}
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")
DEBIAN_CNI_DIR = "/usr/lib/cni"
POD_SUBNET = "10.244.0.0/16"
# One node, so one node's share of the pod subnet (the first the controller manager gives).
NODE_POD_RANGE = "10.244.0.0/24"
CONTAINERD_CONFIG = "etc/containerd/config.toml"
# This machine (and others without CAP_SYS_RESOURCE) refuses a negative oom_score_adj even
# to root; kind's containerd unit asks for -999 and its CRI config for -998 per sandbox.
CONTAINERD_OOM_DROPIN = "[Service]\nOOMScoreAdjust=0\n"


@dataclass(frozen=True)
class NodeFile:
    path: str  # absolute, inside the node
    data: bytes
    mode: int = 0o644


def kind_base_files(kind_module: Path) -> list[NodeFile]:
    """Every file of kind's base image, with the modes its Dockerfile gives them."""
    root = kind_module / KIND_FILES
    if not root.is_dir():
        raise ProbelabError(f"{root} is missing: not a kind module with its base image files")
    files = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        executable = any(relative.startswith(folder + "/") for folder in EXECUTABLE_DIRS)
        files.append(NodeFile("/" + relative, path.read_bytes(), 0o755 if executable else 0o644))
    return files


def _replace_once(text: str, old: str, new: str, where: str) -> str:
    if text.count(old) != 1:
        raise ProbelabError(f"{where}: expected `{old}` once; this kind release changed it")
    return text.replace(old, new)


def containerd_config(kind_text: str, pause_image: str) -> str:
    """kind's containerd config with this node's pause image and a clamped oom_score_adj."""
    where = f"kind's {CONTAINERD_CONFIG}"
    lines = kind_text.splitlines(keepends=True)
    sandbox = [line for line in lines if line.strip().startswith("sandbox_image = ")]
    if len(sandbox) != 1:
        raise ProbelabError(f"{where}: expected one sandbox_image line; this kind release moved it")
    text = kind_text.replace(sandbox[0], f'  sandbox_image = "{pause_image}"\n')
    return _replace_once(
        text, "restrict_oom_score_adj = false", "restrict_oom_score_adj = true", where
    )


def cni_config() -> dict[str, object]:
    """The pod network in place of kindnetd (whose module the proxy does not serve)."""
    return {
        "cniVersion": "1.0.0",
        "name": "probelab-kind",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": NODE_POD_RANGE}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def runtime_spec(spec: dict[str, object]) -> dict[str, object]:
    """containerd's default OCI spec made kind's `cri-base.json`: product files hooked in."""
    hooks = spec.setdefault("hooks", {})
    assert isinstance(hooks, dict)
    hooks.setdefault("createContainer", []).append({"path": "/kind/bin/mount-product-files.sh"})
    process = spec.get("process")
    if isinstance(process, dict):
        process.pop("rlimits", None)
    return spec


def node_files(
    kind_module: Path, binaries: dict[str, Path], kubernetes_version: str, pause_image: str
) -> list[NodeFile]:
    """kind's files, the Kubernetes binaries, `/kind/version`, containerd and CNI settings."""
    files = []
    for file in kind_base_files(kind_module):
        if file.path == "/" + CONTAINERD_CONFIG:
            file = NodeFile(file.path, containerd_config(file.data.decode(), pause_image).encode())
        files.append(file)
    for name, path in sorted(binaries.items()):
        files.append(NodeFile(f"/usr/bin/{name}", path.read_bytes(), 0o755))
    files += [
        NodeFile("/kind/version", kubernetes_version.encode()),
        NodeFile(
            "/etc/systemd/system/containerd.service.d/10-probelab.conf",
            CONTAINERD_OOM_DROPIN.encode(),
        ),
        NodeFile(
            "/etc/cni/net.d/10-probelab.conflist", json.dumps(cni_config(), indent=2).encode()
        ),
    ]
    return files


def node_links() -> dict[str, str]:
    """Symlinks from where kind looks to where Debian installs (CNI plugins included)."""
    links = dict(DEBIAN_LINKS)
    for plugin in CNI_PLUGINS:
        links[f"/opt/cni/bin/{plugin}"] = f"{DEBIAN_CNI_DIR}/{plugin}"
    return links
