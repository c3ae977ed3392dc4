"""The local cluster's registry server: Debian's distribution registry on loopback, with
TLS and basic auth, run as one of the cluster's components.

The server certificate is issued by the cluster CA, which Docker (per-registry `certs.d`) and
containerd (`hosts.toml`) are told to trust for this one host only. The password is random,
kept in a 0600 file in the state directory, and bcrypt-hashed into the htpasswd file the
registry reads.
"""

import json
import os
import secrets
import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path

import yaml

from probelab.clusters.local.components import Component, http_ok
from probelab.clusters.local.config import LocalClusterConfig
from probelab.clusters.local.pki import REGISTRY_SERVING, PkiLayout
from probelab.registries.base import (
    Credentials,
    htpasswd_line,
    htpasswd_of_only,
    with_htpasswd_entry,
)
from probelab.registries.local import DOCKER_CERTS_D, USERNAME, read_credentials


class LocalRegistryServer:
    """Runs and trusts the registry of one local cluster."""

    description = "the local registry"

    def __init__(self, config: LocalClusterConfig, pki: PkiLayout, hosts_dir: Path) -> None:
        self.config = config
        self.pki = pki
        self.hosts_dir = hosts_dir
        self.dir = config.layout.etc / "registry"

    @property
    def credentials_file(self) -> Path:
        return self.dir / "credentials.json"

    def ensure_credentials(self) -> Credentials:
        """The registry's user and password, created on first use."""
        if not self.credentials_file.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            password = secrets.token_urlsafe(24)
            self.credentials_file.touch(mode=0o600)
            self.credentials_file.write_text(
                json.dumps({"username": USERNAME, "password": password})
            )
            self._write_htpasswd(USERNAME, password)
        return read_credentials(self.credentials_file)

    def _write_htpasswd(self, username: str, password: str) -> None:
        """bcrypt-hash the password with `htpasswd`, reading it from stdin (not argv)."""
        path = self.dir / "htpasswd"
        path.touch(mode=0o600)
        path.write_text(htpasswd_line(username, password))

    def _config_file(self) -> Path:
        config = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.config.layout.data / "registry")},
                "delete": {"enabled": True},
            },
            "http": {
                "addr": self.config.registry_host,
                "tls": {
                    "certificate": str(self.pki.cert(REGISTRY_SERVING)),
                    "key": str(self.pki.key(REGISTRY_SERVING)),
                },
            },
            "auth": {"htpasswd": {"realm": "probelab", "path": str(self.dir / "htpasswd")}},
        }
        path = self.dir / "config.yml"
        path.write_text(yaml.safe_dump(config))
        return path

    def component(self) -> Component:
        self.ensure_credentials()
        return Component(
            "registry",
            ["docker-registry", "serve", str(self._config_file())],
            # Without credentials the registry must refuse: 401 proves it is up and guarded.
            lambda: http_ok(
                f"https://{self.config.registry_host}/v2/", ca=self.pki.ca_cert, expect=401
            ),
            "/v2/ answering 401",
        )

    def _trust_paths(self) -> tuple[Path, Path]:
        host = self.config.registry_host
        return DOCKER_CERTS_D / host, self.hosts_dir / host

    def trust(self) -> None:
        """Make Docker and containerd trust the cluster CA for this registry host only."""
        docker_dir, containerd_dir = self._trust_paths()
        docker_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.pki.ca_cert, docker_dir / "ca.crt")
        self._write_hosts_toml(containerd_dir)

    def untrust(self) -> None:
        """Undo `trust` and every `alias`, and accept only the local user again.

        The containerd folder is the state directory's own, so all of it goes: that also
        clears aliases and users a killed session (the ECR stand-in) left behind.
        """
        docker_dir, _ = self._trust_paths()
        shutil.rmtree(docker_dir, ignore_errors=True)
        shutil.rmtree(self.hosts_dir, ignore_errors=True)
        if (self.dir / "htpasswd").exists():
            self._rewrite_htpasswd(lambda text: htpasswd_of_only(text, USERNAME))

    def _write_hosts_toml(self, directory: Path) -> None:
        """containerd's per-host config: fetch from this registry, trusting the cluster CA."""
        directory.mkdir(parents=True, exist_ok=True)
        url = f"https://{self.config.registry_host}"
        (directory / "hosts.toml").write_text(
            f'server = "{url}"\n\n[host."{url}"]\n'
            f'  capabilities = ["pull", "resolve", "push"]\n'
            f'  ca = "{self.pki.ca_cert}"\n'
        )

    # -- an ECR stand-in (moto) stores its images here: see probelab/registries/ecr_mapping.py

    def upstream(self) -> tuple[str, Path | None]:
        return self.config.registry_host, self.pki.ca_cert

    def alias(self, host: str) -> Callable[[], None]:
        """Make containerd pull images named `host/...` from this registry; returns the undo.
        containerd sends the pull secret's credentials for `host` here."""
        directory = self.hosts_dir / host
        self._write_hosts_toml(directory)
        return partial(shutil.rmtree, directory, ignore_errors=True)

    def set_user(self, username: str, password: str) -> None:
        """Add `username` to the htpasswd file (or change its password); the registry
        re-reads the file when it changes, so no restart is needed."""
        entry = htpasswd_line(username, password).strip()
        self._rewrite_htpasswd(lambda text: with_htpasswd_entry(text, username, entry))

    def remove_user(self, username: str) -> None:
        self._rewrite_htpasswd(lambda text: with_htpasswd_entry(text, username, None))

    def _rewrite_htpasswd(self, change: Callable[[str], str]) -> None:
        """Replace the file by `change` of its text, atomically: the registry may read the
        file meanwhile."""
        path = self.dir / "htpasswd"
        text = path.read_text()
        if (changed := change(text)) == text:
            return
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_text(changed)
        temporary.chmod(path.stat().st_mode & 0o777)
        os.replace(temporary, path)
