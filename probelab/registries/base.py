"""What every registry provider gives the harness.

A registry is a host to push to, a way to log the docker client in, and the
`.dockerconfigjson` a Kubernetes pull secret needs. The lab's point is that kubelet cannot
pull without that secret, so every provider must require credentials.
"""

import base64
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass

import bcrypt
import docker

from probelab.secrets import SECRETS


@dataclass(frozen=True, repr=False)
class Credentials:
    """Basic-auth credentials for a registry; the password never appears in a repr."""

    username: str
    password: str

    def __post_init__(self) -> None:
        SECRETS.register(self.password, username=self.username)

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=***)"


def htpasswd_line(username: str, password: str) -> str:
    """One htpasswd entry with a bcrypt hash, the only scheme the distribution registry takes."""
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()
    return f"{username}:{hashed}\n"


class Registry(ABC):
    """A registry images are pushed to and pulled from with credentials."""

    #: The short name used by `--registry`.
    name: str

    @property
    @abstractmethod
    def host(self) -> str:
        """`host[:port]` as it appears in image references."""

    @abstractmethod
    def credentials(self) -> Credentials:
        """Credentials valid now (providers with expiring tokens refresh them here)."""

    def repository(self, name: str) -> str:
        return f"{self.host}/{name}"

    def login(self, client: docker.DockerClient) -> None:
        """Log the docker client in, so pushes carry the credentials."""
        creds = self.credentials()
        client.login(username=creds.username, password=creds.password, registry=self.host)

    def docker_config_json(self) -> str:
        """The `.dockerconfigjson` payload of a `kubernetes.io/dockerconfigjson` secret."""
        creds = self.credentials()
        auth = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        entry = {"username": creds.username, "password": creds.password, "auth": auth}
        config = json.dumps({"auths": {self.host: entry}})
        SECRETS.register(config)  # and its base64: what the Secret's data holds
        return config


class FixedRegistry(Registry):
    """A registry whose credentials do not change while probelab runs."""

    name = "fixed"

    def __init__(self, host: str, credentials: Credentials) -> None:
        self._host = host
        self._credentials = credentials

    @property
    def host(self) -> str:
        return self._host

    def credentials(self) -> Credentials:
        return self._credentials
