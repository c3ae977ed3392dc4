"""Registry credentials: never printed, correctly encoded for pull secrets, read from disk.

Passwords are unique per test, since creating Credentials registers them process-wide.
"""

from __future__ import annotations

import base64
import json
import stat
import uuid
from pathlib import Path

import bcrypt

from probelab.clusters.local.config import LocalClusterConfig
from probelab.clusters.local.pki import PkiLayout
from probelab.clusters.local.registry_server import LocalRegistryServer
from probelab.registries.base import Credentials, FixedRegistry
from probelab.registries.local import USERNAME, LocalRegistry, read_credentials
from probelab.secrets import SECRETS


def unique_password() -> str:
    return f"pw-{uuid.uuid4().hex}"


def test_credentials_repr_hides_the_password() -> None:
    """Credentials end up in pytest's assertion output and tracebacks; the password must not."""
    password = unique_password()
    creds = Credentials("kube", password)

    for shown in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert password not in shown
        assert "kube" in shown
    assert repr(creds) == "Credentials(username='kube', password=***)"


def test_credentials_register_their_password_for_masking() -> None:
    """Whatever prints the password or its basic-auth form later is masked."""
    password = unique_password()
    Credentials("kube", password)
    basic = base64.b64encode(f"kube:{password}".encode()).decode()

    assert SECRETS.mask(f"{password} {basic}") == "*** ***"


def test_docker_config_json_has_one_auths_entry_for_the_host() -> None:
    """The shape kubelet reads from a `kubernetes.io/dockerconfigjson` secret."""
    password = unique_password()
    registry = FixedRegistry("registry.example:5000", Credentials("kube", password))

    config = json.loads(registry.docker_config_json())

    assert list(config) == ["auths"]
    assert list(config["auths"]) == ["registry.example:5000"]
    entry = config["auths"]["registry.example:5000"]
    assert entry["username"] == "kube"
    assert entry["password"] == password
    assert base64.b64decode(entry["auth"]).decode() == f"kube:{password}"


def test_docker_config_json_keeps_a_colon_in_the_password() -> None:
    """Basic auth splits at the first colon, so a colon in the password survives."""
    password = f"a:b:{uuid.uuid4().hex}"
    registry = FixedRegistry("registry.example", Credentials("kube", password))

    entry = json.loads(registry.docker_config_json())["auths"]["registry.example"]

    username, _, decoded = base64.b64decode(entry["auth"]).decode().partition(":")
    assert (username, decoded) == ("kube", password)


def test_repository_is_under_the_host() -> None:
    registry = FixedRegistry("registry.example:5000", Credentials("kube", unique_password()))

    assert registry.repository("fastapi-health") == "registry.example:5000/fastapi-health"


def test_read_credentials(tmp_path: Path) -> None:
    password = unique_password()
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({"username": "probelab", "password": password}))

    assert read_credentials(path) == Credentials("probelab", password)


def test_local_registry_reads_credentials_on_every_call(tmp_path: Path) -> None:
    """The file is the source of truth: a new password is picked up without a restart."""
    path = tmp_path / "credentials.json"
    first, second = unique_password(), unique_password()
    registry = LocalRegistry("127.0.0.1:5443", path)

    path.write_text(json.dumps({"username": "probelab", "password": first}))
    assert registry.credentials().password == first
    path.write_text(json.dumps({"username": "probelab", "password": second}))
    assert registry.credentials().password == second
    entry = json.loads(registry.docker_config_json())["auths"]["127.0.0.1:5443"]
    assert entry["password"] == second


def test_ensure_credentials_creates_a_private_file_once(tmp_path: Path) -> None:
    """The password is random, kept 0600, hashed for the registry, and stable across calls."""
    config = LocalClusterConfig(home=tmp_path / "home")
    server = LocalRegistryServer(config, PkiLayout(tmp_path / "pki"), tmp_path / "hosts")

    first = server.ensure_credentials()
    second = server.ensure_credentials()

    assert first == second
    assert first.username == USERNAME
    assert len(first.password) >= 24
    assert stat.S_IMODE(server.credentials_file.stat().st_mode) == 0o600
    user, hashed = (server.dir / "htpasswd").read_text().strip().split(":", 1)
    assert user == USERNAME
    assert bcrypt.checkpw(first.password.encode(), hashed.encode())
    assert first.password not in hashed
