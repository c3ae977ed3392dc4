"""The seed's ECR flow end to end, with `--registry=ecr` against moto, on the local
cluster or on kind (whichever the session runs).

A pytest subprocess runs the lab's own first step (labs/test_01_image_pull.py) with the ECR
provider, exactly as a user would: the repository is created in moto, the image is built
and pushed by Docker to `<account>.dkr.ecr.<region>.amazonaws.com/<repository>`, a pod
without the secret shows ImagePullBackOff with an unauthorized pull, and after
`ecr-regcred` and the ServiceAccount patch a new pod runs. The repository is new for every
run, so the push really happens. Afterwards this checks that the image landed in the
cluster's registry (the stand-in's storage: the local TLS registry, or kind's recipe
registry), that on kind the node holds it under the ECR name, that the token never reached
the output, and that everything the stand-in configured on the machine, in the registry
and in the nodes is gone again.
"""

import base64
import os
import ssl
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker.models.containers import Container

from probelab.aws_stub import ACCOUNT, MotoServer
from probelab.clusters.base import ClusterHandle
from probelab.clusters.kind import KindCluster, KindSettings
from probelab.clusters.local.cluster import LocalCluster
from probelab.clusters.local.config import LocalClusterConfig
from probelab.clusters.local.pki import PkiLayout
from probelab.docker_engine import docker_client
from probelab.images import content_tag
from probelab.registries.base import Registry
from probelab.registries.ecr_mapping import HOSTS_FILE
from probelab.registries.kind import hosts_toml_path
from probelab.registries.local import DOCKER_CERTS_D

ROOT = Path(__file__).resolve().parents[2]
REGION = "ap-northeast-2"
HOST = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
TOKEN = f"{ACCOUNT}-auth-token"
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json,"
    "application/vnd.oci.image.manifest.v1+json"
)


@pytest.fixture(scope="module")
def where(cluster: ClusterHandle) -> ClusterHandle:
    if cluster.provider not in ("local", "kind"):
        pytest.skip("the ECR stand-in keeps its images in the registry probelab runs")
    if os.geteuid() != 0:
        pytest.skip("the ECR stand-in needs root (/etc/hosts, port 443); scripts/dev raises")
    return cluster


@pytest.fixture(scope="module")
def state_env(where: ClusterHandle) -> dict[str, str]:
    """Where this session keeps kind's state and probelab's cache, for the inner session:
    pytester gives it another HOME, where both would otherwise be looked for."""
    if where.provider != "kind":
        return {}
    return {
        "PROBELAB_KIND_HOME": str(KindSettings.from_env().registry.state_dir),
        "PROBELAB_CACHE": str(LocalClusterConfig().cache),
    }


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[MotoServer]:
    with MotoServer.running() as moto:
        moto.use(monkeypatch, tmp_path)
        monkeypatch.setenv("COLUMNS", "300")  # progress lines unwrapped, for matching
        yield moto


class RegistryApi:
    """The cluster's registry's HTTP API, with its own (not the ECR) credentials."""

    def __init__(self, cluster: ClusterHandle) -> None:
        assert cluster.registry is not None
        registry: Registry = cluster.registry
        creds = registry.credentials()
        basic = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {basic}", "Accept": MANIFEST_TYPES}
        self.tls: ssl.SSLContext | None = None
        if cluster.provider == "local":
            local = LocalCluster()
            self.base = f"https://{local.config.registry_host}/v2"
            self.tls = ssl.create_default_context(cafile=str(PkiLayout(local.layout.pki).ca_cert))
        else:  # kind's recipe: plain HTTP, published on loopback
            self.base = f"http://{registry.host}/v2"

    def manifest_digest(self, repository: str, reference: str) -> str:
        return self._call("HEAD", f"{repository}/manifests/{reference}")

    def delete_manifest(self, repository: str, digest: str) -> None:
        self._call("DELETE", f"{repository}/manifests/{digest}")

    def _call(self, method: str, path: str) -> str:
        request = urllib.request.Request(f"{self.base}/{path}", method=method, headers=self.headers)
        with urllib.request.urlopen(request, context=self.tls, timeout=30) as response:
            return str(response.headers.get("Docker-Content-Digest", ""))


def _exec(container: Container, *command: str) -> tuple[int, str]:
    code, output = container.exec_run(list(command))
    return int(code), bytes(output or b"").decode(errors="replace")


def _check_kind_after(image: str) -> None:
    """The node pulled the image under the ECR name; the registry and nodes are as before."""
    settings = KindSettings.from_env()
    engine = docker_client(None)
    try:
        for name in KindCluster(settings).nodes():
            node = engine.containers.get(name)
            code, output = _exec(node, "crictl", "inspecti", image)
            assert code == 0, f"{name} does not hold {image}: {output}"
            _exec(node, "crictl", "rmi", image)  # leave the node's images as they were
            directory = hosts_toml_path(HOST).rsplit("/", 1)[0]
            assert _exec(node, "test", "-e", directory)[0] == 1, f"{directory} left in {name}"
        registry = engine.containers.get(settings.registry.name)
        code, htpasswd = _exec(registry, "cat", "/auth/htpasswd")
        assert code == 0, htpasswd
        assert [line.split(":", 1)[0] for line in htpasswd.splitlines() if line] == ["probelab"]
    finally:
        engine.close()


def test_seed_flow_with_ecr(
    request: pytest.FixtureRequest,
    pytester: pytest.Pytester,
    where: ClusterHandle,
    state_env: dict[str, str],
    aws: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if request.config.getoption("registry") == "ecr":
        pytest.skip("this session holds the machine's one ECR stand-in; the inner one would wait")
    for name, value in state_env.items():
        monkeypatch.setenv(name, value)
    repository = f"probelab-it-{uuid.uuid4().hex[:6]}/fastapi-health"
    result = pytester.runpytest_subprocess(
        str(ROOT / "labs" / "test_01_image_pull.py"),
        f"--cluster={where.provider}",
        "--keep-cluster",
        "--registry=ecr",
        f"--ecr-region={REGION}",
        f"--ecr-repository={repository}",
        "--namespace-prefix=ecr-it",
        "--log-level=DEBUG",
        "-rA",
        "-p",
        "no:cacheprovider",
    )
    output = result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=2)

    image = f"{HOST}/{repository}:{content_tag(ROOT / 'app')}"
    store = "the local registry" if where.provider == "local" else "kind's registry "
    result.stdout.fnmatch_lines(
        [
            f"*ECR repository {HOST}/{repository}: created (account {ACCOUNT}, credentials: env)*",
            f"*{HOST} is {store}*",
            f"*ok  pushing {image}*",
        ]
    )
    assert TOKEN not in output
    assert base64.b64encode(f"AWS:{TOKEN}".encode()).decode() not in output

    registry = RegistryApi(where)
    digest = registry.manifest_digest(repository, image.rsplit(":", 1)[1])
    assert digest.startswith("sha256:")

    assert HOST not in HOSTS_FILE.read_text()
    assert not (DOCKER_CERTS_D / HOST).exists()
    if where.provider == "local":
        registry.delete_manifest(repository, digest)  # leave the shared registry as it was
        local = LocalCluster()
        assert not (local.layout.etc / "containerd" / "certs.d" / HOST).exists()
        htpasswd = (local.layout.etc / "registry" / "htpasswd").read_text()
        assert "AWS:" not in htpasswd
    else:  # kind's registry allows no deletes; it goes with the cluster probelab made
        _check_kind_after(image)
