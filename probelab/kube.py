"""Talking to a cluster: clients, watches with deadlines, apply, namespaces, secrets, logs.

Everything here goes through the official kubernetes Python client. Waiting is always a
watch that ends when a condition holds or fails at a deadline; a watch that expires (HTTP
410) is resumed from a fresh list. Calls that can fail for a moment (connection resets, 5xx,
429) are retried with tenacity.
"""

import base64
import re
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import tenacity
import urllib3.exceptions
import yaml
from kubernetes import client, config, dynamic, watch
from kubernetes.client.exceptions import ApiException

from probelab.errors import ProbelabError, WaitTimeout

T = TypeVar("T")
FIELD_MANAGER = "probelab"
# Every namespace a lab run creates carries this label, valued with the run's id.
RUN_LABEL = "probelab.dev/run"
_TRANSIENT_STATUS = {429, 500, 502, 503, 504}


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, ApiException):
        return error.status in _TRANSIENT_STATUS
    return isinstance(error, urllib3.exceptions.HTTPError | ConnectionError)


retry_transient = tenacity.retry(
    retry=tenacity.retry_if_exception(_is_transient),
    stop=tenacity.stop_after_delay(30),
    wait=tenacity.wait_exponential(multiplier=0.2, max=5),
    reraise=True,
)


# Each scenario keeps three watches open while tests make their own calls.
CONNECTION_POOL_SIZE = 64


def api_client(kubeconfig: Path | None, context: str | None) -> client.ApiClient:
    """A client for `context` in `kubeconfig`; a clear error when it cannot be loaded."""
    configuration = client.Configuration()
    try:
        config.load_kube_config(
            config_file=str(kubeconfig) if kubeconfig else None,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except (config.ConfigException, FileNotFoundError) as error:
        where = kubeconfig or "the default kubeconfig"
        raise ProbelabError(f"cannot load context {context!r} from {where}: {error}") from error
    except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError, TypeError) as error:
        # a directory, a binary file, YAML that is no kubeconfig: the client has no word for it
        where = kubeconfig or "the default kubeconfig"
        raise ProbelabError(
            f"{where} is not a readable kubeconfig ({type(error).__name__}); give the file "
            "`kubectl config view` reads"
        ) from None
    configuration.connection_pool_maxsize = CONNECTION_POOL_SIZE
    return client.ApiClient(configuration)


def check_reachable(api: client.ApiClient) -> str:
    """The server's version, or a ProbelabError saying the cluster cannot be reached."""
    try:
        info = client.VersionApi(api).get_code(_request_timeout=10)
    except (ApiException, urllib3.exceptions.HTTPError, OSError) as error:
        host = api.configuration.host
        raise ProbelabError(f"the cluster at {host} is unreachable: {error}") from error
    return str(info.git_version)


def kubelet_version(api: client.ApiClient) -> str:
    """The oldest kubelet version among the nodes: its rules bound every node's timing."""
    nodes = retry_transient(client.CoreV1Api(api).list_node)().items
    versions = [
        str(n.status.node_info.kubelet_version) for n in nodes if n.status and n.status.node_info
    ]
    if not versions:
        raise ProbelabError("the cluster has no node reporting a kubelet version")
    return min(versions, key=_version_key)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def get_raw(api: client.ApiClient, path: str) -> bytes:
    """GET a path the typed API does not cover (OpenAPI documents), with the client's auth."""
    method, url, headers, body, post = api.param_serialize(
        "GET", path, auth_settings=["BearerToken"]
    )
    response = retry_transient(api.call_api)(method, url, headers, body, post, _request_timeout=30)
    data = response.read()
    if response.status != 200 or data is None:
        raise ProbelabError(f"GET {path} answered {response.status}")
    return bytes(data)


def node_is_ready(node: client.V1Node) -> bool:
    """True when the node reports the condition Ready=True."""
    if node.status is None:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def wait_nodes_ready(api: client.ApiClient, names: set[str], *, timeout: float) -> None:
    """Watch until every named node is Ready; WaitTimeout (an AssertionError) if not in time."""
    core = client.CoreV1Api(api)
    ready: set[str] = set()

    def all_ready(node: client.V1Node) -> bool:
        name = node.metadata.name if node.metadata else None
        if name in names:
            (ready.add if node_is_ready(node) else ready.discard)(name)
        return ready >= names

    watch_until(
        core.list_node, all_ready, timeout=timeout, what=f"node {', '.join(sorted(names))} Ready"
    )


def watch_until(
    list_func: Callable[..., Any],
    check: Callable[[Any], T | None],
    *,
    timeout: float,
    what: str,
    **list_kwargs: Any,
) -> T:
    """List, then watch, until `check(obj)` returns something truthy for some object.

    Resumes from a new list after a 410 and after the API server went away (a restart):
    objects that changed meanwhile are in that list. Fails with WaitTimeout after `timeout`
    seconds, saying how long the server was unreachable when it was.
    """
    deadline = time.monotonic() + timeout
    lost: float | None = None  # since when the server has not answered
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            # list retries end at the deadline, not later
            bounded = retry_transient(list_func).retry_with(
                stop=tenacity.stop_after_delay(remaining)
            )
            listing = bounded(**list_kwargs)
            lost = None
            for item in listing.items:
                if result := check(item):
                    return result
            version = listing.metadata.resource_version
            while (remaining := deadline - time.monotonic()) > 0:
                stream = watch.Watch().stream(
                    list_func,
                    resource_version=version,
                    timeout_seconds=max(1, int(remaining)),
                    **list_kwargs,
                )
                for event in stream:
                    version = event["raw_object"]["metadata"]["resourceVersion"]
                    if event["type"] in ("ADDED", "MODIFIED") and (
                        result := check(event["object"])
                    ):
                        return result
        except ApiException as error:
            if error.status == 410:
                continue
            if not _is_transient(error):
                raise
            time.sleep(min(RELIST_PAUSE, max(0.0, deadline - time.monotonic())))
        except (urllib3.exceptions.HTTPError, OSError):
            lost = lost or time.monotonic()
            time.sleep(min(RELIST_PAUSE, max(0.0, deadline - time.monotonic())))
    message = f"timed out after {timeout:.0f}s waiting for {what}"
    if lost is not None:
        message += f"; the API server has not answered for the last {time.monotonic() - lost:.0f}s"
    raise WaitTimeout(message)


RELIST_PAUSE = 1.0
"""Seconds between lists while the API server does not answer (it restarts in a few)."""


def dynamic_client(api: client.ApiClient) -> dynamic.DynamicClient:
    return dynamic.DynamicClient(api)


def apply(api: client.ApiClient, objects: Iterable[Mapping[str, Any]]) -> None:
    """Server-side apply each object, as `kubectl apply --server-side` would."""
    dyn = dynamic_client(api)
    for obj in objects:
        resource = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        metadata = obj["metadata"]
        retry_transient(resource.server_side_apply)(
            body=dict(obj),
            name=metadata["name"],
            namespace=metadata.get("namespace"),
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )


# How long the controller manager may take to give a new namespace its default
# ServiceAccount; on a cluster that has just started it may lag by seconds.
DEFAULT_ACCOUNT_SECONDS = 60


def create_namespace(api: client.ApiClient, name: str, labels: Mapping[str, str]) -> None:
    """Create `name` and wait for its `default` ServiceAccount: until the controller
    manager has made it, the API server refuses every pod in the namespace."""
    core = client.CoreV1Api(api)
    body = client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=dict(labels)))
    retry_transient(core.create_namespace)(body)
    watch_until(
        core.list_namespaced_service_account,
        lambda account: account,
        timeout=DEFAULT_ACCOUNT_SECONDS,
        what=f"the default ServiceAccount of namespace {name}",
        namespace=name,
        field_selector="metadata.name=default",
    )


def delete_namespace(api: client.ApiClient, name: str, *, timeout: float | None = None) -> None:
    """Delete a namespace; with `timeout`, wait until it is gone."""
    core = client.CoreV1Api(api)
    try:
        retry_transient(core.delete_namespace)(name, grace_period_seconds=0)
    except ApiException as error:
        if error.status == 404:
            return
        raise
    if timeout is not None:
        wait_deleted(
            core.list_namespace,
            timeout=timeout,
            what=f"namespace {name} to go",
            field_selector=f"metadata.name={name}",
        )


def wait_deleted(
    list_func: Callable[..., Any], *, timeout: float, what: str, **list_kwargs: Any
) -> None:
    """Watch until a list selects nothing (objects deleted) or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        listing = retry_transient(list_func)(**list_kwargs)
        if not listing.items:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}")
        stream = watch.Watch().stream(
            list_func,
            resource_version=listing.metadata.resource_version,
            timeout_seconds=max(1, int(remaining)),
            **list_kwargs,
        )
        for event in stream:
            if event["type"] == "DELETED":
                break


def put_pull_secret(
    api: client.ApiClient, namespace: str, name: str, docker_config_json: str
) -> None:
    """Create or replace a `kubernetes.io/dockerconfigjson` secret."""
    core = client.CoreV1Api(api)
    encoded = base64.b64encode(docker_config_json.encode()).decode()
    body = client.V1Secret(
        metadata=client.V1ObjectMeta(name=name, namespace=namespace),
        type="kubernetes.io/dockerconfigjson",
        data={".dockerconfigjson": encoded},
    )
    try:
        retry_transient(core.create_namespaced_secret)(namespace, body)
    except ApiException as error:
        if error.status != 409:
            raise
        retry_transient(core.replace_namespaced_secret)(name, namespace, body)


def merged_pull_secrets(existing: Iterable[str], name: str) -> list[dict[str, str]]:
    """`imagePullSecrets` with `name` added after the existing entries, no duplicates."""
    names = list(dict.fromkeys([*existing, name]))
    return [{"name": n} for n in names]


def add_pull_secret_to_service_account(
    api: client.ApiClient,
    namespace: str,
    secret: str,
    *,
    service_account: str = "default",
    timeout: float = 60.0,
) -> None:
    """What `kubectl patch serviceaccount default -p '{"imagePullSecrets":...}'` does,
    except that entries already there are kept.

    The ServiceAccount is made by the controller manager shortly after the namespace, so
    this watches for it first.
    """
    core = client.CoreV1Api(api)
    account = watch_until(
        core.list_namespaced_service_account,
        lambda sa: sa,
        timeout=timeout,
        what=f"ServiceAccount {namespace}/{service_account}",
        namespace=namespace,
        field_selector=f"metadata.name={service_account}",
    )
    current = [ref.name for ref in account.image_pull_secrets or []]
    if secret in current:
        return
    patch = {"imagePullSecrets": merged_pull_secrets(current, secret)}
    retry_transient(core.patch_namespaced_service_account)(service_account, namespace, patch)


def pod_logs(
    api: client.ApiClient,
    namespace: str,
    pod: str,
    *,
    container: str | None = None,
    previous: bool = False,
    timestamps: bool = False,
) -> str:
    """`kubectl logs [--previous] [--timestamps]`; an explanation instead of the text when
    there is none."""
    try:
        return str(
            client.CoreV1Api(api).read_namespaced_pod_log(
                pod,
                namespace,
                container=container,
                previous=previous,
                timestamps=timestamps,
                _request_timeout=15,
            )
        )
    except ApiException as error:
        return f"(no {'previous ' if previous else ''}logs: {error.reason})"
