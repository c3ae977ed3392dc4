"""The kind provider without kind: command lines, settings, ownership, KEP-1755 parsing.

A fake `kind` on PATH (a shell script that logs its argv and stdin) stands in for the CLI,
so the provider's real subprocess calls are what is checked.
"""

import http.server
import json
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import yaml

from probelab.clusters import kind as kind_cluster
from probelab.clusters.kind import (
    KindCluster,
    KindSettings,
    cluster_config,
    cluster_names,
    create_command,
    kind_binary,
)
from probelab.clusters.kind_node.build import NodeImage
from probelab.clusters.kind_node.components import ComponentVersions
from probelab.errors import ProbelabError
from probelab.registries.base import htpasswd_line
from probelab.registries.kind import (
    CREDENTIALS_ENV,
    HOSTING_KEY,
    KindRegistryServer,
    KindRegistrySettings,
    LocalRegistryHosting,
    documented_registry,
    node_hosts_toml,
    parse_hosting,
)

FAKE_KIND = """#!/bin/sh
# argv, one call a line; stdin of `create` kept beside it
echo "$*" >> "{log}"
case "$1 $2" in
  "get clusters") cat "{clusters}" 2>/dev/null || echo "No kind clusters found." >&2 ;;
  "get nodes") echo "probelab-control-plane" ;;
  "get kubeconfig") cat "{kubeconfig}" ;;
  "create cluster") cat > "{stdin}"; exit {create_status} ;;
  "delete cluster") ;;
esac
"""


class FakeKind:
    def __init__(self, directory: Path, *, create_status: int = 0) -> None:
        self.directory = directory
        self.log = directory / "calls.log"
        self.clusters = directory / "clusters"
        self.stdin = directory / "create-stdin"
        # What `kind get kubeconfig` prints: a cluster nobody listens for.
        self.kubeconfig = directory / "kind-kubeconfig"
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                    "users": [{"name": "u", "user": {}}],
                    "contexts": [
                        {"name": "kind-probelab", "context": {"cluster": "c", "user": "u"}}
                    ],
                    "current-context": "kind-probelab",
                }
            )
        )
        script = directory / "bin" / "kind"
        script.parent.mkdir()
        script.write_text(
            FAKE_KIND.format(
                log=self.log,
                clusters=self.clusters,
                stdin=self.stdin,
                kubeconfig=self.kubeconfig,
                create_status=create_status,
            )
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        self.path = script

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def fake_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeKind:
    fake = FakeKind(tmp_path)
    monkeypatch.setenv("PATH", f"{fake.path.parent}:/usr/bin:/bin")
    monkeypatch.setenv("PROBELAB_KIND_HOME", str(tmp_path / "state"))
    return fake


def test_create_command_passes_name_kubeconfig_wait_and_image(tmp_path: Path) -> None:
    settings = KindSettings(
        name="lab",
        node_image="kindest/node:v1.35.8@sha256:abc",
        registry=KindRegistrySettings(state_dir=tmp_path),
    )
    assert create_command("/usr/bin/kind", settings) == [
        "/usr/bin/kind",
        "create",
        "cluster",
        "--name=lab",
        f"--kubeconfig={tmp_path / 'lab.kubeconfig'}",
        "--wait=120s",
        "--config=-",
        "--image=kindest/node:v1.35.8@sha256:abc",
    ]
    without_image = create_command("kind", KindSettings(name="lab"))
    assert not any(arg.startswith("--image") for arg in without_image)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBELAB_KIND_CLUSTER", "course")
    monkeypatch.setenv("PROBELAB_KIND_NODE_IMAGE", "kindest/node:v1.36.4")
    monkeypatch.setenv("PROBELAB_KIND_REGISTRY_PORT", "5002")
    settings = KindSettings.from_env()
    assert (settings.name, settings.node_image, settings.context) == (
        "course",
        "kindest/node:v1.36.4",
        "kind-course",
    )
    assert settings.registry.host == "localhost:5002"
    monkeypatch.delenv("PROBELAB_KIND_NODE_IMAGE")
    assert KindSettings.from_env().node_image is None


def test_cluster_names_skip_blank_lines() -> None:
    assert cluster_names("probelab\n\nother\n") == ["probelab", "other"]
    assert cluster_names("") == []


def test_missing_kind_and_go_says_how_to_get_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(
        ProbelabError, match=r"kind is not on PATH, and Go is not .*--cluster=local"
    ):
        kind_binary()


def test_absent_cluster_is_created_with_the_registry_and_cgroup_patches(
    fake_kind: FakeKind,
) -> None:
    cluster = KindCluster(KindSettings.from_env())
    undo: list[object] = []
    assert cluster.ensure(undo, cluster_config) is True  # type: ignore[arg-type]
    calls = fake_kind.calls()
    assert calls[0] == "get clusters"
    assert calls[1].startswith("create cluster --name=probelab --kubeconfig=")
    assert "--config=-" in calls[1]
    assert undo == [cluster.delete], "the deletion is registered before kind create runs"
    config = yaml.safe_load(fake_kind.stdin.read_text())
    assert 'config_path = "/etc/containerd/certs.d"' in config["containerdConfigPatches"][0]
    assert yaml.safe_load(config["kubeadmConfigPatches"][0]) == {
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,
        "serializeImagePulls": False,
    }
    assert "networking" not in config, "an official node image keeps kindnetd"


def test_a_node_made_here_gets_its_cni_and_component_images() -> None:
    built = NodeImage(
        "probelab.invalid/kind-node:v1.35.4-abc",
        ComponentVersions("v1.35.4", "v3.6.16", "v1.14.7"),
    )
    config = yaml.safe_load(cluster_config(built))
    assert config["networking"]["disableDefaultCNI"] is True
    images = yaml.safe_load(config["kubeadmConfigPatches"][1])
    assert images["etcd"]["local"] == {"imageRepository": "probelab.invalid", "imageTag": "v3.6.16"}
    assert images["dns"] == {"imageRepository": "probelab.invalid", "imageTag": "v1.14.7"}


def test_existing_cluster_is_reused_not_created(fake_kind: FakeKind) -> None:
    fake_kind.clusters.write_text("other\nprobelab\n")
    undo: list[object] = []
    assert KindCluster(KindSettings.from_env()).ensure(undo, cluster_config) is False  # type: ignore[arg-type]
    assert fake_kind.calls() == ["get clusters"]
    assert undo == []


def test_kubeconfig_goes_to_probelab_state_with_mode_0600(fake_kind: FakeKind) -> None:
    cluster = KindCluster(KindSettings.from_env())
    path = cluster.write_kubeconfig()
    assert path == cluster.settings.kubeconfig
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "kind-probelab" in path.read_text()
    assert fake_kind.calls() == ["get kubeconfig --name=probelab"]


def test_failed_kind_call_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeKind(tmp_path, create_status=1)
    monkeypatch.setenv("PATH", f"{fake.path.parent}:/usr/bin:/bin")
    with pytest.raises(ProbelabError, match=r"create cluster --name=probelab.*failed"):
        KindCluster(KindSettings(name="probelab")).create(cluster_config())


@pytest.fixture
def no_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """The network guard needs root and a Docker engine; the integration tests cover it."""
    monkeypatch.setattr(kind_cluster, "guard_network", lambda undo: None)


def test_bring_up_deletes_the_cluster_it_created_when_the_node_never_gets_ready(
    fake_kind: FakeKind, no_guard: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never_ready(self: KindCluster, api: object) -> None:
        raise ProbelabError("node never Ready")

    monkeypatch.setattr(KindCluster, "wait_node_ready", never_ready)
    with pytest.raises(ProbelabError, match="node never Ready"):
        kind_cluster.bring_up()
    calls = fake_kind.calls()
    assert calls[1].startswith("create cluster")
    assert calls[-1] == "delete cluster --name=probelab"


def test_ctrl_c_during_kind_create_deletes_the_partial_cluster(
    fake_kind: FakeKind, no_guard: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(self: KindCluster, config: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(KindCluster, "create", interrupted)
    with pytest.raises(KeyboardInterrupt):
        kind_cluster.bring_up()
    assert fake_kind.calls() == ["get clusters", "delete cluster --name=probelab"]


def test_bring_up_never_deletes_a_reused_cluster(
    fake_kind: FakeKind, no_guard: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_kind.clusters.write_text("probelab\n")

    def never_ready(self: KindCluster, api: object) -> None:
        raise ProbelabError("node never Ready")

    monkeypatch.setattr(KindCluster, "wait_node_ready", never_ready)
    with pytest.raises(ProbelabError):
        kind_cluster.bring_up()
    assert not any(call.startswith(("create", "delete")) for call in fake_kind.calls())


def test_a_reused_cluster_made_here_recreates_its_registry_without_a_pull(
    fake_kind: FakeKind, no_guard: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its registry container may be gone; `registry:3` cannot be pulled where nodes are made."""
    fake_kind.clusters.write_text("probelab\n")
    monkeypatch.setenv("PROBELAB_KIND_NODE_IMAGE", "build")

    class Engine:
        def close(self) -> None:
            pass

    monkeypatch.setattr(kind_cluster, "docker_client", lambda host: Engine())
    monkeypatch.setattr(kind_cluster, "ensure_registry_standin", lambda engine: "made-here:1")
    seen: list[KindRegistrySettings] = []

    def with_registry(cluster: KindCluster, undo: object, *, owned: bool) -> None:
        seen.append(cluster.settings.registry)
        raise ProbelabError("stop here")

    monkeypatch.setattr(kind_cluster, "_with_registry", with_registry)
    with pytest.raises(ProbelabError, match="stop here"):
        kind_cluster.bring_up()
    assert [(s.image, s.network) for s in seen] == [("made-here:1", seen[0].cluster_network)]
    assert not any(call.startswith(("create", "delete")) for call in fake_kind.calls())


# -- the registry side --------------------------------------------------------------


def test_kind_recipe_document_is_parsed() -> None:
    data = {HOSTING_KEY: 'host: "localhost:5001"\nhelp: "https://kind.sigs.k8s.io/"\n'}
    assert parse_hosting(data, where="cm") == LocalRegistryHosting(
        host="localhost:5001", help="https://kind.sigs.k8s.io/"
    )


def test_all_kep_fields_round_trip() -> None:
    hosting = LocalRegistryHosting(
        host="localhost:5001",
        host_from_container_runtime="registry:5000",
        host_from_cluster_network="registry.kube-system.svc:5000",
        help="https://example.invalid/help",
    )
    assert parse_hosting(hosting.configmap_data(), where="cm") == hosting


@pytest.mark.parametrize("data", [None, {}, {"other": "x"}])
def test_no_v1_document_means_no_registry(data: dict[str, str] | None) -> None:
    assert parse_hosting(data, where="cm") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("host: [unclosed", "is not YAML"),
        ("help: only\n", "no `host` string"),
        ("- a\n", "no `host`"),
    ],
)
def test_malformed_documents_are_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(ProbelabError, match=f"kube-public/x: .*{message}"):
        parse_hosting({HOSTING_KEY: text}, where="kube-public/x")


def test_htpasswd_line_is_a_bcrypt_hash_of_the_password() -> None:
    user, hashed = htpasswd_line("probelab", "s3cret-pass").rstrip("\n").split(":", 1)
    assert user == "probelab"
    assert hashed.startswith("$2")
    assert bcrypt.checkpw(b"s3cret-pass", hashed.encode())
    assert not bcrypt.checkpw(b"other-pass", hashed.encode())


def test_run_options_follow_the_recipe_on_a_bridge(tmp_path: Path) -> None:
    settings = KindRegistrySettings(state_dir=tmp_path)
    options = KindRegistryServer(engine=None, settings=settings).run_options()
    assert options["name"] == "kind-registry"
    assert options["image"] == "registry:3"
    assert options["network"] == "bridge"
    assert options["ports"] == {"5000/tcp": ("127.0.0.1", 5001)}
    assert options["restart_policy"] == {"Name": "always"}
    environment = options["environment"]
    assert isinstance(environment, dict)
    assert environment["REGISTRY_AUTH"] == "htpasswd"
    assert "REGISTRY_HTTP_ADDR" not in environment
    assert settings.node_endpoint == "http://kind-registry:5000"
    assert node_hosts_toml(settings.node_endpoint).startswith('[host."http://kind-registry:5000"]')


def test_run_options_without_a_bridge_bind_loopback_only(tmp_path: Path) -> None:
    settings = KindRegistrySettings(network="host", port=5099, state_dir=tmp_path)
    options = KindRegistryServer(engine=None, settings=settings).run_options()
    assert "ports" not in options
    environment = options["environment"]
    assert isinstance(environment, dict)
    assert environment["REGISTRY_HTTP_ADDR"] == "127.0.0.1:5099"


class _Answer(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def registry_answering(request: pytest.FixtureRequest) -> Iterator[str]:
    handler = type("Handler", (_Answer,), {"status": request.param})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("registry_answering", [200], indirect=True)
def test_an_open_registry_cannot_serve_the_lab(registry_answering: str) -> None:
    with pytest.raises(ProbelabError, match=r"answers 200 without credentials.*first step"):
        documented_registry(LocalRegistryHosting(host=registry_answering))


@pytest.mark.parametrize("registry_answering", [401], indirect=True)
def test_a_guarded_registry_needs_credentials_given(
    registry_answering: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosting = LocalRegistryHosting(host=registry_answering)
    monkeypatch.delenv(CREDENTIALS_ENV, raising=False)
    with pytest.raises(ProbelabError, match=f"demands credentials.*{CREDENTIALS_ENV}"):
        documented_registry(hosting)
    creds_file = tmp_path / "creds.json"
    creds_file.write_text(json.dumps({"username": "u", "password": "given-password"}))
    monkeypatch.setenv(CREDENTIALS_ENV, str(creds_file))
    registry = documented_registry(hosting)
    assert registry.host == registry_answering
    assert registry.credentials().password == "given-password"


def test_split_push_and_pull_names_are_refused() -> None:
    hosting = LocalRegistryHosting(host="localhost:5001", host_from_container_runtime="reg:5000")
    with pytest.raises(ProbelabError, match="must be the same"):
        documented_registry(hosting)


def test_a_node_made_here_keeps_its_releases_feature_gates() -> None:
    """Like a real node of that release: the image-pull lab asks the registry itself."""
    for versions in (("v1.34.4", "v3.6.5", "v1.12.1"), ("v1.35.4", "v3.6.6", "v1.13.1")):
        node = NodeImage("n:1", ComponentVersions(*versions))
        patch = yaml.safe_load(cluster_config(node))["kubeadmConfigPatches"][0]
        assert "featureGates" not in yaml.safe_load(patch)
