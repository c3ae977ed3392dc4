"""The kind registry: kind's local-registry recipe, with basic auth, found through KEP-1755.

kind documents one recipe (a `registry` container published on `127.0.0.1:5001`, joined to
the `kind` network, and a `hosts.toml` on every node that sends `localhost:5001` to it),
helm/kind-action another (`kind-registry:5000`). Both describe the result in the
`kube-public/local-registry-hosting` ConfigMap (KEP-1755), so probelab reads the host from
there instead of assuming either.

The lab's first step is a pull that fails for want of credentials, so a registry anyone
may pull from cannot serve it. The server here follows kind's recipe and adds htpasswd
basic auth; the password is random, kept in a 0600 file, and only its bcrypt hash goes into
the container. A registry documented by someone else is used only if it demands
credentials and they are given (`PROBELAB_KIND_REGISTRY_CREDENTIALS`, a JSON file with
`username` and `password`).

probelab's own registry can also keep an ECR stand-in's images (`KindStandInStore`): its
htpasswd, inside the container, then also accepts the ECR token, and every node sends the
ECR host's pulls to it.
"""

import io
import json
import os
import secrets
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import tenacity
import yaml
from docker.models.containers import Container
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from probelab import kube
from probelab.errors import ProbelabError
from probelab.registries.base import (
    Credentials,
    FixedRegistry,
    htpasswd_line,
    htpasswd_of_only,
    with_htpasswd_entry,
)
from probelab.registries.ecr_mapping import unless_a_session_runs
from probelab.registries.local import read_credentials

HOSTING_CONFIGMAP = "local-registry-hosting"
HOSTING_NAMESPACE = "kube-public"
HOSTING_KEY = "localRegistryHosting.v1"
HELP_URL = "https://kind.sigs.k8s.io/docs/user/local-registry/"
USERNAME = "probelab"
MANAGED_LABEL = "dev.probelab.registry"
CREDENTIALS_ENV = "PROBELAB_KIND_REGISTRY_CREDENTIALS"
REGISTRY_IMAGE_ENV = "PROBELAB_KIND_REGISTRY_IMAGE"
_HTPASSWD = "/auth/htpasswd"
RELATIVE_URLS = "REGISTRY_HTTP_RELATIVEURLS"
CERTS_D = "/etc/containerd/certs.d"
READY_TIMEOUT = 30.0


@dataclass(frozen=True)
class LocalRegistryHosting:
    """KEP-1755's `LocalRegistryHostingV1`: where a cluster's local registry is."""

    host: str
    host_from_container_runtime: str | None = None
    host_from_cluster_network: str | None = None
    help: str | None = None

    def configmap_data(self) -> dict[str, str]:
        fields = {
            "host": self.host,
            "hostFromContainerRuntime": self.host_from_container_runtime,
            "hostFromClusterNetwork": self.host_from_cluster_network,
            "help": self.help,
        }
        document = {key: value for key, value in fields.items() if value}
        return {HOSTING_KEY: yaml.safe_dump(document, sort_keys=False)}


def parse_hosting(data: Mapping[str, str] | None, *, where: str) -> LocalRegistryHosting | None:
    """The hosting a ConfigMap's data describes; None when it names no v1 document."""
    text = (data or {}).get(HOSTING_KEY)
    if text is None:
        return None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ProbelabError(f"{where}: {HOSTING_KEY} is not YAML: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("host"), str):
        raise ProbelabError(f"{where}: {HOSTING_KEY} has no `host` string (KEP-1755)")

    def optional(key: str) -> str | None:
        value = document.get(key)
        return str(value) if value else None

    return LocalRegistryHosting(
        host=document["host"],
        host_from_container_runtime=optional("hostFromContainerRuntime"),
        host_from_cluster_network=optional("hostFromClusterNetwork"),
        help=optional("help"),
    )


def read_hosting(
    api: client.ApiClient, *, name: str = HOSTING_CONFIGMAP
) -> LocalRegistryHosting | None:
    """Read `kube-public/<name>`; None when the cluster documents no local registry."""
    try:
        configmap = kube.retry_transient(client.CoreV1Api(api).read_namespaced_config_map)(
            name, HOSTING_NAMESPACE
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return parse_hosting(configmap.data, where=f"ConfigMap {HOSTING_NAMESPACE}/{name}")


def document_hosting(
    api: client.ApiClient, hosting: LocalRegistryHosting, *, name: str = HOSTING_CONFIGMAP
) -> None:
    """Publish `hosting` as KEP-1755 asks, the way kind's recipe does with kubectl apply."""
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": HOSTING_NAMESPACE},
        "data": hosting.configmap_data(),
    }
    kube.apply(api, [configmap])


def anonymous_status(host: str, *, timeout: float = 5.0) -> int:
    """What `GET http://<host>/v2/` answers without credentials (401: auth is required)."""
    try:
        with urllib.request.urlopen(f"http://{host}/v2/", timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError) as error:
        raise ProbelabError(f"the registry at {host} does not answer: {error}") from error


def node_hosts_toml(endpoint: str, *, only: bool = False) -> str:
    """containerd's `hosts.toml` sending pulls for one registry host to `endpoint`.

    `only`: `endpoint` is also the `server`, so the host itself is never asked, not even
    after `endpoint` refused (401 without a pull secret): for a name that must not be looked
    up (the ECR stand-in's). With a `server` line alone, containerd 1.6.20 still asked the
    host itself (seen in a kind node made here), hence the `[host]` table too.
    """
    mirror = f'[host."{endpoint}"]\n  capabilities = ["pull", "resolve"]\n'
    return f'server = "{endpoint}"\n\n{mirror}' if only else mirror


def hosts_toml_path(host: str) -> str:
    """Where a kind node's containerd (`config_path`) looks for `host`'s `hosts.toml`."""
    return f"{CERTS_D}/{host}/hosts.toml"


def _copy_in(container: Container, files: Mapping[str, str]) -> None:
    """Write text files (absolute paths) into a container; the engine makes missing parents.

    Only the files go into the archive, never their directories, so nothing that exists
    has its owner or mode changed. Each file's mtime is now to the microsecond (a PAX
    header): the registry reads its htpasswd again only when the mtime changes.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size = len(data)
            info.mode = 0o644
            info.mtime = time.time()
            archive.addfile(info, io.BytesIO(data))
    if not container.put_archive("/", buffer.getvalue()):
        raise ProbelabError(f"could not write {', '.join(files)} into {container.name}")


def _read_text(container: Container, path: str) -> str:
    """One text file from a container (the engine sends it as a tar archive)."""
    stream, _ = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        member = archive.extractfile(archive.next() or path)
        if member is None:
            raise ProbelabError(f"{path} in {container.name} is not a file")
        return member.read().decode()


@dataclass(frozen=True)
class KindRegistrySettings:
    """The recipe's choices: container name, loopback port, image, Docker network.

    `network="host"` is for engines without a bridge network (probelab's own local Docker
    engine is one): the registry then listens on `127.0.0.1:<port>` itself.
    """

    name: str = "kind-registry"
    port: int = 5001
    image: str = "registry:3"
    network: str = "bridge"
    cluster_network: str = "kind"
    state_dir: Path = field(default_factory=lambda: _default_state_dir())

    @classmethod
    def from_env(cls) -> "KindRegistrySettings":
        env = os.environ
        return cls(
            name=env.get("PROBELAB_KIND_REGISTRY_NAME", cls.name),
            port=int(env.get("PROBELAB_KIND_REGISTRY_PORT", cls.port)),
            image=env.get(REGISTRY_IMAGE_ENV, cls.image),
        )

    @property
    def host(self) -> str:
        """How the host machine (and, through `hosts.toml`, every node) names the registry."""
        return f"localhost:{self.port}"

    @property
    def node_endpoint(self) -> str:
        """Where nodes really send pulls: the container by name on the cluster network."""
        return f"http://{self.name}:5000"

    @property
    def credentials_file(self) -> Path:
        return self.state_dir / f"{self.name}.json"


def _default_state_dir() -> Path:
    if "PROBELAB_KIND_HOME" in os.environ:
        return Path(os.environ["PROBELAB_KIND_HOME"])
    xdg = os.environ.get("XDG_STATE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "probelab" / "kind"


class _Exited(ProbelabError):
    """The registry container stopped: waiting longer cannot help."""


class KindRegistry(FixedRegistry):
    """The registry provider for a kind cluster's local registry."""

    name = "kind"


class KindRegistryServer:
    """Runs kind's recipe registry, with basic auth, on one Docker engine."""

    def __init__(self, engine: docker.DockerClient, settings: KindRegistrySettings) -> None:
        self.engine = engine
        self.settings = settings

    def ensure_credentials(self) -> Credentials:
        """The registry's user and password, made on first use and kept 0600."""
        path = self.settings.credentials_file
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(
                json.dumps({"username": USERNAME, "password": secrets.token_urlsafe(24)})
            )
        return read_credentials(path)

    def container(self) -> Container | None:
        try:
            return self.engine.containers.get(self.settings.name)
        except docker.errors.NotFound:
            return None

    def run_options(self) -> dict[str, object]:
        """`docker run` options: the recipe's, plus htpasswd auth read from inside the container.

        Relative URLs in `Location` headers: behind the ECR stand-in's TLS forwarder the
        registry sees plain HTTP and would send Docker's uploads to `http://<ecr-host>/`.
        """
        settings = self.settings
        environment = {
            "REGISTRY_AUTH": "htpasswd",
            "REGISTRY_AUTH_HTPASSWD_REALM": "probelab",
            "REGISTRY_AUTH_HTPASSWD_PATH": _HTPASSWD,
            RELATIVE_URLS: "true",
        }
        options: dict[str, object] = {
            "name": settings.name,
            "image": settings.image,
            "detach": True,
            "restart_policy": {"Name": "always"},
            "labels": {MANAGED_LABEL: "true"},
            "environment": environment,
            "network": settings.network,
        }
        if settings.network == "host":
            environment["REGISTRY_HTTP_ADDR"] = f"127.0.0.1:{settings.port}"
        else:
            options["ports"] = {"5000/tcp": ("127.0.0.1", settings.port)}
        return options

    def ensure(self) -> bool:
        """Start the registry unless probelab's already runs; True when this call created it."""
        existing = self.container()
        if existing is not None:
            if existing.labels.get(MANAGED_LABEL) != "true":
                raise ProbelabError(
                    f"a container named {self.settings.name} exists and is not probelab's "
                    "registry; remove it or set PROBELAB_KIND_REGISTRY_NAME to another name"
                )
            if not self.settings.credentials_file.exists():
                raise ProbelabError(
                    f"probelab's registry {self.settings.name} runs but its password file "
                    f"{self.settings.credentials_file} is gone; `docker rm -f "
                    f"{self.settings.name}` and run again"
                )
            if existing.status != "running":
                existing.start()
            self.wait_ready()
            return False
        creds = self.ensure_credentials()
        options = self.run_options()
        image = str(options.pop("image"))
        self._pull_if_missing(image)
        created = self.engine.containers.create(image, **options)
        try:
            htpasswd = htpasswd_line(creds.username, creds.password)
            _copy_in(created, {_HTPASSWD: htpasswd})
            created.start()
            self.wait_ready()
        except BaseException:  # a registry that never came up is not left behind
            created.remove(force=True)
            raise
        return True

    def _pull_if_missing(self, image: str) -> None:
        try:
            self.engine.images.get(image)
        except docker.errors.ImageNotFound:
            try:
                self.engine.images.pull(image)
            except docker.errors.APIError as error:
                raise ProbelabError(f"cannot pull the registry image {image}: {error}") from error

    def wait_ready(self) -> None:
        """Poll until the registry refuses anonymous requests (it is up and guarded)."""
        host = f"127.0.0.1:{self.settings.port}"
        try:
            for attempt in tenacity.Retrying(
                stop=tenacity.stop_after_delay(READY_TIMEOUT),
                wait=tenacity.wait_fixed(0.2),
                retry=tenacity.retry_if_exception(
                    lambda e: isinstance(e, ProbelabError) and not isinstance(e, _Exited)
                ),
                reraise=True,
            ):
                with attempt:
                    self._raise_if_exited()
                    status = anonymous_status(host, timeout=2.0)
        except ProbelabError as error:
            logs = self._log_tail()
            raise ProbelabError(f"{error} (container {self.settings.name}):\n{logs}") from error
        if status != 401:
            raise ProbelabError(
                f"the registry at {host} answered {status} without credentials, not 401"
            )

    def _raise_if_exited(self) -> None:
        container = self.container()
        if container is None:
            return
        # With restart=always a failing registry shows as restarting, not exited.
        if container.status in ("exited", "dead", "restarting") or container.attrs.get(
            "RestartCount"
        ):
            raise _Exited(f"the registry container exited ({container.status})")

    def _log_tail(self) -> str:
        container = self.container()
        if container is None:
            return "(no container)"
        return bytes(container.logs(tail=15)).decode(errors="replace")

    def configure_nodes(self, nodes: Sequence[str], host: str | None = None) -> None:
        """Write `hosts.toml` into each node so `host` reaches the container.

        By default `host` is `localhost:<port>`, kind's recipe; any other name (an ECR
        stand-in's) is sent nowhere else.
        """
        text = node_hosts_toml(self.settings.node_endpoint, only=host is not None)
        for node in nodes:
            container = self.engine.containers.get(node)
            _copy_in(container, {hosts_toml_path(host or self.settings.host): text})

    def unconfigure_nodes(self, nodes: Sequence[str], host: str) -> None:
        """Remove what `configure_nodes(nodes, host)` wrote (the API can only add files)."""
        directory = hosts_toml_path(host).rsplit("/", 1)[0]
        for node in nodes:
            result = self.engine.containers.get(node).exec_run(["rm", "-rf", directory])
            if result.exit_code != 0:
                output = bytes(result.output).decode(errors="replace").strip()
                raise ProbelabError(f"could not remove {directory} in {node}: {output}")

    def set_user(self, username: str, password: str) -> None:
        """Add `username` to the registry's htpasswd (or change its password)."""
        entry = htpasswd_line(username, password)
        self._rewrite_htpasswd(lambda text: with_htpasswd_entry(text, username, entry))

    def remove_user(self, username: str) -> None:
        self._rewrite_htpasswd(lambda text: with_htpasswd_entry(text, username, None))

    def forget_other_users(self) -> None:
        """Accept only probelab's own user again: a killed ECR stand-in session leaves its
        token's user behind, and nothing else would ever remove it."""
        self._rewrite_htpasswd(lambda text: htpasswd_of_only(text, USERNAME))

    def _rewrite_htpasswd(self, change: Callable[[str], str]) -> None:
        container = self.container()
        if container is None:
            raise ProbelabError(f"the registry container {self.settings.name} is gone")
        text = _read_text(container, _HTPASSWD)
        if (changed := change(text)) != text:
            _copy_in(container, {_HTPASSWD: changed})

    def connect(self) -> None:
        """Join the cluster's network (once), so nodes reach the registry by name."""
        container = self.container()
        if container is None or self.settings.network == "host":
            return
        networks = container.attrs.get("NetworkSettings", {}).get("Networks", {})
        if self.settings.cluster_network not in networks:
            self.engine.networks.get(self.settings.cluster_network).connect(container)

    def hosting(self) -> LocalRegistryHosting:
        return LocalRegistryHosting(host=self.settings.host, help=HELP_URL)

    def registry(self) -> KindRegistry:
        return KindRegistry(self.settings.host, self.ensure_credentials())

    def remove(self) -> None:
        """Remove the container (only ever called for one this session created)."""
        container = self.container()
        if container is not None:
            container.remove(force=True)


class KindStandInStore:
    """probelab's kind registry as the store of another registry host (the ECR stand-in).

    It lives as long as the session's cluster handle, so it opens the Docker engine for
    each change instead of holding one.
    """

    def __init__(
        self,
        settings: KindRegistrySettings,
        nodes: Sequence[str],
        engine: Callable[[], docker.DockerClient],
    ) -> None:
        self.settings = settings
        self.nodes = tuple(nodes)
        self._engine = engine
        self.description = f"kind's registry {settings.name}"

    @contextmanager
    def _server(self) -> Iterator[KindRegistryServer]:
        with closing(self._engine()) as engine:
            yield KindRegistryServer(engine, self.settings)

    def upstream(self) -> tuple[str, Path | None]:
        """Published on loopback, plain HTTP (kind's recipe); the nodes use its name."""
        return f"127.0.0.1:{self.settings.port}", None

    def set_user(self, username: str, password: str) -> None:
        with self._server() as server:
            server.set_user(username, password)

    def remove_user(self, username: str) -> None:
        with self._server() as server:
            server.remove_user(username)

    def alias(self, host: str) -> Callable[[], None]:
        with self._server() as server:
            container = server.container()
            environment = (container.attrs.get("Config", {}).get("Env") or []) if container else []
            if f"{RELATIVE_URLS}=true" not in environment:
                raise ProbelabError(
                    f"the registry container {self.settings.name} was started by an older "
                    "probelab (absolute upload URLs, which the ECR stand-in cannot pass on); "
                    f"`docker rm -f {self.settings.name}` and run again"
                )
            server.configure_nodes(self.nodes, host)

        def undo() -> None:
            with self._server() as server:
                server.unconfigure_nodes(self.nodes, host)

        return undo


def given_credentials() -> Credentials | None:
    """Credentials for a registry probelab did not start, from the file the env names."""
    path = os.environ.get(CREDENTIALS_ENV)
    if not path:
        return None
    try:
        return read_credentials(Path(path))
    except (OSError, ValueError, KeyError) as error:
        raise ProbelabError(
            f"{CREDENTIALS_ENV}={path}: not a JSON file with username and password ({error})"
        ) from error


def provide(
    api: client.ApiClient, server: KindRegistryServer, nodes: Sequence[str]
) -> tuple[KindRegistry, bool]:
    """The cluster's registry, started per kind's recipe when the cluster documents none.

    Returns the provider and whether this call created the registry container.
    """
    hosting = read_hosting(api)
    if hosting is not None and hosting.host != server.settings.host:
        return documented_registry(hosting), False
    created = server.ensure()
    if not created:
        unless_a_session_runs(server.forget_other_users)
    server.connect()
    server.configure_nodes(nodes)
    if hosting is None:
        document_hosting(api, server.hosting())
        hosting = read_hosting(api)
        if hosting is None:
            raise ProbelabError(
                f"{HOSTING_NAMESPACE}/{HOSTING_CONFIGMAP} is unreadable after apply"
            )
    return server.registry(), created


def documented_registry(hosting: LocalRegistryHosting) -> KindRegistry:
    """A registry someone else documented: usable only if it demands credentials we have."""
    where = f"{HOSTING_NAMESPACE}/{HOSTING_CONFIGMAP}"
    runtime_host = hosting.host_from_container_runtime
    if runtime_host and runtime_host != hosting.host:
        raise ProbelabError(
            f"{where} names {hosting.host} for pushes but {runtime_host} for nodes; the lab "
            "pulls by the name it pushes under, so the two must be the same"
        )
    status = anonymous_status(hosting.host)
    if status != 401:
        raise ProbelabError(
            f"the registry {hosting.host} ({where}) answers {status} without credentials, so "
            "the lab's first step (a pull refused for want of a secret) cannot happen; let "
            f"probelab start its own (delete {where}, or drop `registry: true` from "
            "helm/kind-action)"
        )
    credentials = given_credentials()
    if credentials is None:
        raise ProbelabError(
            f"the registry {hosting.host} ({where}) demands credentials; name a JSON file "
            f"with username and password in {CREDENTIALS_ENV}"
        )
    return KindRegistry(hosting.host, credentials)
