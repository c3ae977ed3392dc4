"""The seed's ECR flow end to end on the local cluster, with `--registry=ecr` against moto.

A pytest subprocess runs the lab's own first step (labs/test_01_image_pull.py) with the ECR
provider, exactly as a user would: the repository is created in moto, the image is built
and pushed by Docker to `<account>.dkr.ecr.<region>.amazonaws.com/<repository>`, a pod
without the secret shows ImagePullBackOff with an unauthorized pull, and after
`ecr-regcred` and the ServiceAccount patch a new pod runs. The repository is new for every
run, so the push really happens. Afterwards this checks that the image landed in the local
registry (the stand-in's storage), that the token never reached the output, and that
everything the stand-in configured on the machine is gone again.
"""

import base64
import ssl
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from probelab.aws_stub import ACCOUNT, MotoServer
from probelab.clusters.base import ClusterHandle
from probelab.clusters.local.cluster import LocalCluster
from probelab.clusters.local.pki import PkiLayout
from probelab.images import content_tag
from probelab.registries.base import Credentials
from probelab.registries.ecr_mapping import HOSTS_FILE
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
def local(cluster: ClusterHandle) -> LocalCluster:
    if cluster.provider != "local":
        pytest.skip("the ECR stand-in stores its images in the local cluster's registry")
    return LocalCluster()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[MotoServer]:
    with MotoServer.running() as moto:
        moto.use(monkeypatch, tmp_path)
        monkeypatch.setenv("COLUMNS", "300")  # progress lines unwrapped, for matching
        yield moto


class LocalRegistryApi:
    """The local registry's HTTP API, with its own (not the ECR) credentials."""

    def __init__(self, local: LocalCluster) -> None:
        creds: Credentials = local.registry().credentials()
        basic = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {basic}", "Accept": MANIFEST_TYPES}
        self.base = f"https://{local.config.registry_host}/v2"
        self.tls = ssl.create_default_context(cafile=str(PkiLayout(local.layout.pki).ca_cert))

    def manifest_digest(self, repository: str, reference: str) -> str:
        return self._call("HEAD", f"{repository}/manifests/{reference}")

    def delete_manifest(self, repository: str, digest: str) -> None:
        self._call("DELETE", f"{repository}/manifests/{digest}")

    def _call(self, method: str, path: str) -> str:
        request = urllib.request.Request(f"{self.base}/{path}", method=method, headers=self.headers)
        with urllib.request.urlopen(request, context=self.tls, timeout=30) as response:
            return str(response.headers.get("Docker-Content-Digest", ""))


def test_seed_flow_with_ecr(
    request: pytest.FixtureRequest, pytester: pytest.Pytester, local: LocalCluster, aws: MotoServer
) -> None:
    if request.config.getoption("registry") == "ecr":
        pytest.skip("this session holds the machine's one ECR stand-in; the inner one would wait")
    repository = f"probelab-it-{uuid.uuid4().hex[:6]}/fastapi-health"
    result = pytester.runpytest_subprocess(
        str(ROOT / "labs" / "test_01_image_pull.py"),
        "--cluster=local",
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
    result.stdout.fnmatch_lines(
        [
            f"*ECR repository {HOST}/{repository}: created (account {ACCOUNT}, credentials: env)*",
            f"*{HOST} is the local registry*",
            f"*ok  pushing {image}*",
        ]
    )
    assert TOKEN not in output
    assert base64.b64encode(f"AWS:{TOKEN}".encode()).decode() not in output

    registry = LocalRegistryApi(local)
    digest = registry.manifest_digest(repository, image.rsplit(":", 1)[1])
    assert digest.startswith("sha256:")
    registry.delete_manifest(repository, digest)  # leave the shared registry as it was

    assert HOST not in HOSTS_FILE.read_text()
    assert not (DOCKER_CERTS_D / HOST).exists()
    assert not (local.layout.etc / "containerd" / "certs.d" / HOST).exists()
    htpasswd = (local.layout.etc / "registry" / "htpasswd").read_text()
    assert "AWS:" not in htpasswd
