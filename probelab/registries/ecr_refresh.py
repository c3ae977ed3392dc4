"""Keep the pull secrets probelab made valid after the ECR token inside them expires.

kubelet reads a pull secret each time it pulls, so a secret holding a 12-hour token breaks
every pull (a restarted pod's too) once the token expires. When the registry's token is
due, the refresher fetches a new one, and whenever the token changes (whoever fetched it)
it replaces `ecr-regcred` in every namespace probelab made (label `probelab.dev/run`) whose
secret is for this registry's host; secrets for other registries and namespaces probelab
did not make are left alone.
"""

import base64
import json
import threading

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from probelab import kube
from probelab.errors import ProbelabError
from probelab.progress import say
from probelab.registries.base import PULL_SECRET
from probelab.registries.ecr import EcrRegistry

RETRY_AFTER = 60.0  # after a failed refresh (AWS or the API server unreachable)


class PullSecretRefresher:
    """Replaces the lab's pull secrets whenever the registry's token changes."""

    def __init__(
        self, registry: EcrRegistry, api: client.ApiClient, *, secret: str = PULL_SECRET
    ) -> None:
        self.registry = registry
        self.api = api
        self.secret = secret
        self._seen = registry.token_fetches
        self._stop = threading.Event()
        # Whoever fetches the new token (this thread, or a lab adding its secret) wakes us.
        self._wake = threading.Event()
        registry.on_new_token(lambda _: self._wake.set())
        self._thread: threading.Thread | None = None

    def refresh_if_due(self) -> list[str]:
        """Fetch a new token if the current one is due; if the token changed since the last
        call, replace the secrets. The namespaces whose secret was replaced."""
        config = self.registry.docker_config_json()  # fetches the token when it is due
        if self.registry.token_fetches == self._seen:
            return []
        self._seen = self.registry.token_fetches
        replaced = []
        for namespace in self._namespaces_with_secret():
            try:
                kube.put_pull_secret(self.api, namespace, self.secret, config)
            except ApiException as error:
                if error.status in (403, 404):  # the namespace went away meanwhile
                    continue
                raise
            replaced.append(namespace)
        if replaced:
            say(f"ECR token refreshed; replaced {self.secret} in {', '.join(replaced)}")
        return replaced

    def _namespaces_with_secret(self) -> list[str]:
        """probelab's live namespaces whose pull secret is for this registry."""
        core = client.CoreV1Api(self.api)
        listing = kube.retry_transient(core.list_namespace)(label_selector=kube.RUN_LABEL)
        live = [
            ns.metadata.name
            for ns in listing.items
            if ns.metadata and ns.metadata.name and not ns.metadata.deletion_timestamp
        ]
        found: list[str] = []
        for name in live:
            try:
                secret = kube.retry_transient(core.read_namespaced_secret)(self.secret, name)
            except ApiException as error:
                if error.status == 404:
                    continue
                raise
            if self.registry.host in _auths(secret):
                found.append(name)
        return found

    def start(self) -> "PullSecretRefresher":
        """Refresh in the background from now until `stop`."""
        self._thread = threading.Thread(target=self._run, name="ecr-token-refresh", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        # Waits on an event until the token is due: a new token or `stop` ends it at once.
        delay = self.registry.seconds_until_due()
        while not self._stop.is_set():
            self._wake.wait(delay)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.refresh_if_due()
                delay = self.registry.seconds_until_due()
            except (ProbelabError, ApiException) as error:
                say(f"ECR token refresh failed, trying again in {RETRY_AFTER:.0f}s: {error}")
                delay = RETRY_AFTER


def _auths(secret: client.V1Secret) -> set[str]:
    """The registry hosts a `kubernetes.io/dockerconfigjson` secret has credentials for."""
    encoded = (secret.data or {}).get(".dockerconfigjson")
    if secret.type != "kubernetes.io/dockerconfigjson" or not encoded:
        return set()
    return set(json.loads(base64.b64decode(encoded)).get("auths", {}))
