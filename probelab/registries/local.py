"""The local cluster's registry as a push and pull target: its host and its credentials.

It stands where ECR stands in the lab: pulls without credentials fail with the same
`no basic auth credentials` kubelet reports for ECR. The server that runs it is one of the
local cluster's components (`probelab.clusters.local.registry_server`); this side reads the
random password that the server keeps in a 0600 file in the state directory.
"""

import json
from pathlib import Path

from probelab.registries.base import Credentials, Registry

USERNAME = "probelab"
DOCKER_CERTS_D = Path("/etc/docker/certs.d")


def read_credentials(path: Path) -> Credentials:
    data = json.loads(path.read_text())
    return Credentials(data["username"], data["password"])


class LocalRegistry(Registry):
    """The registry provider for the local cluster's registry."""

    name = "local"

    def __init__(self, host: str, credentials_file: Path) -> None:
        self._host = host
        self._credentials_file = credentials_file

    @property
    def host(self) -> str:
        return self._host

    def credentials(self) -> Credentials:
        return read_credentials(self._credentials_file)
