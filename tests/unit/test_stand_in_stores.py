"""Where the ECR stand-in keeps its images: the local registry or kind's, without a cluster.

kind's registry keeps its htpasswd inside its container and the nodes read `hosts.toml`
inside theirs, so a fake Docker engine that holds containers' files in memory (written and
read as the tar archives the Docker API really exchanges) stands in for the engine here.
The whole flow runs on a real kind cluster in tests/integration/test_ecr_flow.py.
"""

import io
import os
import tarfile
from pathlib import Path
from types import SimpleNamespace

import bcrypt
import docker.errors
import pytest

from probelab.clusters.base import ClusterHandle
from probelab.errors import ProbelabError
from probelab.registries.base import with_htpasswd_entry
from probelab.registries.ecr import EcrRegistry
from probelab.registries.ecr_session import stand_in_store
from probelab.registries.kind import (
    RELATIVE_URLS,
    KindRegistryServer,
    KindRegistrySettings,
    KindStandInStore,
    hosts_toml_path,
    node_hosts_toml,
)

HOST = "123456789012.dkr.ecr.ap-northeast-2.amazonaws.com"
HTPASSWD = "/auth/htpasswd"


class FakeContainer:
    """A container's files, changed only through tar archives as the Docker API does."""

    def __init__(self, name: str, env: list[str] | None = None) -> None:
        self.name = name
        self.attrs = {"Config": {"Env": env or []}}
        self.files: dict[str, bytes] = {}
        self.mtimes: dict[str, float] = {}
        self.commands: list[list[str]] = []

    def put_archive(self, path: str, data: bytes) -> bool:
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            for member in archive.getmembers():
                extracted = archive.extractfile(member)
                assert extracted is not None
                where = os.path.join(path, member.name)
                self.files[where] = extracted.read()
                self.mtimes[where] = member.mtime
        return True

    def get_archive(self, path: str) -> tuple[list[bytes], dict[str, object]]:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            info = tarfile.TarInfo(os.path.basename(path))
            info.size = len(self.files[path])
            archive.addfile(info, io.BytesIO(self.files[path]))
        return [buffer.getvalue()], {}

    def exec_run(self, command: list[str]) -> SimpleNamespace:
        self.commands.append(command)
        if command[:2] == ["rm", "-rf"]:
            self.files = {k: v for k, v in self.files.items() if not k.startswith(command[2])}
        return SimpleNamespace(exit_code=0, output=b"")


class FakeEngine:
    def __init__(self, *containers: FakeContainer) -> None:
        self.by_name = {container.name: container for container in containers}
        self.containers = SimpleNamespace(get=self._get)
        self.closed = 0

    def _get(self, name: str) -> FakeContainer:
        if name not in self.by_name:
            raise docker.errors.NotFound(name)
        return self.by_name[name]

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def settings(tmp_path: Path) -> KindRegistrySettings:
    return KindRegistrySettings(state_dir=tmp_path)


def test_htpasswd_entry_is_replaced_or_removed_and_other_users_kept() -> None:
    text = "probelab:$2b$hash1\nAWS:$2b$old\n"
    assert with_htpasswd_entry(text, "AWS", "AWS:$2b$new\n") == "probelab:$2b$hash1\nAWS:$2b$new\n"
    assert with_htpasswd_entry(text, "AWS", None) == "probelab:$2b$hash1\n"
    # A user whose name merely starts like another's is someone else.
    assert with_htpasswd_entry("AWSX:$2b$x\n", "AWS", None) == "AWSX:$2b$x\n"


def test_kind_registry_takes_a_second_user_in_its_container_and_drops_it_again(
    settings: KindRegistrySettings,
) -> None:
    registry = FakeContainer(settings.name)
    registry.files[HTPASSWD] = b"probelab:$2b$12$kept\n"
    server = KindRegistryServer(FakeEngine(registry), settings)

    server.set_user("AWS", "first-token")
    first_mtime = registry.mtimes[HTPASSWD]
    server.set_user("AWS", "second-token")
    lines = registry.files[HTPASSWD].decode().splitlines()
    assert lines[0] == "probelab:$2b$12$kept"
    assert [line.split(":", 1)[0] for line in lines] == ["probelab", "AWS"]
    assert bcrypt.checkpw(b"second-token", lines[1].split(":", 1)[1].encode())
    # The registry reloads its htpasswd only when the mtime changes: two writes in one
    # second must still differ.
    assert registry.mtimes[HTPASSWD] > first_mtime

    server.remove_user("AWS")
    assert registry.files[HTPASSWD] == b"probelab:$2b$12$kept\n"


def test_a_gone_registry_container_is_one_clear_error(settings: KindRegistrySettings) -> None:
    server = KindRegistryServer(FakeEngine(), settings)
    with pytest.raises(ProbelabError, match="registry container kind-registry is gone"):
        server.set_user("AWS", "token")


def test_kind_store_sends_the_ecr_host_only_to_the_registry_and_undoes_it(
    settings: KindRegistrySettings,
) -> None:
    nodes = [FakeContainer("probelab-control-plane"), FakeContainer("probelab-worker")]
    registry = FakeContainer(settings.name, [f"{RELATIVE_URLS}=true"])
    engine = FakeEngine(registry, *nodes)
    store = KindStandInStore(settings, [node.name for node in nodes], lambda: engine)

    undo = store.alias(HOST)
    path = hosts_toml_path(HOST)
    assert path == f"/etc/containerd/certs.d/{HOST}/hosts.toml"
    for node in nodes:
        # Also the `server`: after a 401 containerd asks no one else (no lookup of the name).
        assert node.files[path].decode() == (
            'server = "http://kind-registry:5000"\n\n'
            '[host."http://kind-registry:5000"]\n  capabilities = ["pull", "resolve"]\n'
        )
    undo()
    for node in nodes:
        assert path not in node.files
        assert node.commands == [["rm", "-rf", f"/etc/containerd/certs.d/{HOST}"]]
    assert engine.closed == 2, "each change opens and closes its own engine client"
    assert store.upstream() == ("127.0.0.1:5001", None)  # plain HTTP on loopback


def test_a_registry_sending_absolute_upload_urls_is_refused_before_any_change(
    settings: KindRegistrySettings,
) -> None:
    """Behind the forwarder such a registry would send Docker's uploads to port 80."""
    node = FakeContainer("probelab-control-plane")
    engine = FakeEngine(FakeContainer(settings.name), node)
    store = KindStandInStore(settings, [node.name], lambda: engine)
    with pytest.raises(ProbelabError, match=r"older probelab .* `docker rm -f kind-registry`"):
        store.alias(HOST)
    assert node.files == {}
    server = KindRegistryServer(engine, settings)
    assert server.run_options()["environment"][RELATIVE_URLS] == "true"  # type: ignore[index]


def test_kinds_own_recipe_file_is_unchanged() -> None:
    assert node_hosts_toml("http://kind-registry:5000") == (
        '[host."http://kind-registry:5000"]\n  capabilities = ["pull", "resolve"]\n'
    )


def _ecr(monkeypatch: pytest.MonkeyPatch) -> EcrRegistry:
    registry = EcrRegistry.__new__(EcrRegistry)
    monkeypatch.setattr(EcrRegistry, "endpoint_url", "http://127.0.0.1:5000")
    monkeypatch.setattr(EcrRegistry, "host", HOST)
    return registry


def test_a_cluster_without_a_registry_of_probelabs_cannot_keep_the_images(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = ClusterHandle("existing", None, None, owned=False)
    with pytest.raises(ProbelabError, match="works with --cluster=local or --cluster=kind"):
        stand_in_store(_ecr(monkeypatch), cluster.stand_in_store)


def test_the_stand_in_without_root_says_why_it_needs_root(
    monkeypatch: pytest.MonkeyPatch, settings: KindRegistrySettings
) -> None:
    store = KindStandInStore(settings, [], lambda: FakeEngine())
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(ProbelabError, match=rf"needs root: it points {HOST} at this machine"):
        stand_in_store(_ecr(monkeypatch), store)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert stand_in_store(_ecr(monkeypatch), store) is store
