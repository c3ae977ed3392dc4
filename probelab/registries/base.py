"""What every registry provider gives the harness.

A registry is a host to push to, a way to log the docker client in, and the
`.dockerconfigjson` a Kubernetes pull secret needs. The lab's point is that kubelet cannot
pull without that secret, so every provider must require credentials.
"""

import base64
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import bcrypt
import docker

from probelab.secrets import SECRETS

PULL_SECRET = "ecr-regcred"
"""The seed's name for the pull secret that holds a registry's credentials, whichever
registry stands where ECR stands."""


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


def with_htpasswd_entry(text: str, username: str, entry: str | None) -> str:
    """An htpasswd file's text with `username`'s line replaced by `entry` (None: removed)."""
    lines = [line for line in text.splitlines() if line and not line.startswith(f"{username}:")]
    if entry is not None:
        lines.append(entry.strip())
    return "".join(f"{line}\n" for line in lines)


def htpasswd_of_only(text: str, username: str) -> str:
    """An htpasswd file's text with every user but `username` removed (what a killed ECR
    stand-in session left behind, for one)."""
    return "".join(f"{line}\n" for line in text.splitlines() if line.startswith(f"{username}:"))


class StandInStore(Protocol):
    """A registry probelab runs that can also answer for another registry's host name.

    The ECR stand-in (moto) has no registry of its own, so its images are kept in the
    cluster's registry: that registry accepts the ECR token's user, and the nodes send the
    ECR host's pulls to it (see `probelab.registries.ecr_mapping`).
    """

    #: How progress lines name it ("the local registry").
    description: str

    def upstream(self) -> tuple[str, Path | None]:
        """`address:port` where this machine reaches it, and its TLS CA (None: plain HTTP)."""
        ...

    def set_user(self, username: str, password: str) -> None:
        """Accept `username` with `password` (again, with a new password), without a restart."""
        ...

    def remove_user(self, username: str) -> None: ...

    def alias(self, host: str) -> Callable[[], None]:
        """Make the nodes pull images named `host/...` from here; returns the undo."""
        ...


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
