"""`probelab verify` on the real cluster, as an instructor with read-only credentials.

The seed's lab (the three pods, the Service, the pull secret on the default
ServiceAccount) is set up in a fresh namespace and left to reach the state a student
would hand in. The rubric then runs as a ServiceAccount bound to the built-in `view`
ClusterRole plus a Role that lets it get events and the one pull secret, with a token from
the TokenRequest API: full marks, and every request it sent was a GET. Then one item at a
time is broken, and the matching check must fail with its hint.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client import rest

from probelab import kube
from probelab.cli import main
from probelab.lab import Lab, Scenario
from probelab.lab import namespace_name as make_namespace_name
from probelab.registries.base import PULL_SECRET, Registry
from probelab.scenario import ScenarioLab
from probelab.secrets import SECRETS
from probelab.verify import (
    BAD,
    GOOD,
    NAMES,
    RUBRIC,
    SERVICE,
    SLOW,
    Result,
    Student,
    verify,
)

MANIFESTS = {
    BAD: "fastapi-liveness-bad.yaml",
    GOOD: "fastapi-liveness-good.yaml",
    SLOW: "fastapi-slow-startup.yaml",
    SERVICE: "fastapi-svc.yaml",
}
INSTRUCTOR, VIEWER = "instructor", "viewer"
HINTS = {check.id: check.hint for check in RUBRIC}


def _expected_hint(check: str, namespace: str) -> str:
    """The check's English hint with the lab's names and the student's namespace in it."""
    return HINTS[check].format(**NAMES).replace("$namespace", namespace)


@pytest.fixture(scope="module")
def student_lab(
    request: pytest.FixtureRequest, kube_api: client.ApiClient, lab_image: str, registry: Registry
) -> Iterator[Lab]:
    """The seed's lab as a student leaves it: bad in CrashLoopBackOff, good and slow Ready."""
    config = request.config
    lab = ScenarioLab(
        kube_api,
        Scenario("verify", tuple(MANIFESTS.values())),
        namespace=make_namespace_name(config.getoption("namespace_prefix"), "verify"),
        run_id="verify",
        image=lab_image,
        registry=registry,
        manifests_dir=config.getoption("manifests_dir"),
    )
    try:
        lab.start()
        _wait_until_handed_in(lab)
        yield lab
    finally:
        lab.close()


def _wait_until_handed_in(lab: ScenarioLab) -> None:
    lab.pod(BAD).shows("CrashLoopBackOff")
    good = lab.pod(GOOD)
    good.becomes_ready()
    lab.pod(SLOW).becomes_ready()
    lab.service(SERVICE).serves(good)


def _kubeconfig_for(
    lab: ScenarioLab, account: str, *, secret_reader: bool, directory: Path
) -> Path:
    """A ServiceAccount bound to `view` (plus events and, if asked, the pull secret), and a
    kubeconfig holding a short-lived token for it."""
    core, rbac = client.CoreV1Api(lab.api), client.RbacAuthorizationV1Api(lab.api)
    namespace = lab.namespace
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=account))
    )
    subject = [client.RbacV1Subject(kind="ServiceAccount", name=account, namespace=namespace)]
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name=f"{account}-view"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="view"
            ),
            subjects=subject,
        ),
    )
    rules = [client.V1PolicyRule(api_groups=[""], resources=["events"], verbs=["get", "list"])]
    if secret_reader:
        rules.append(
            client.V1PolicyRule(
                api_groups=[""], resources=["secrets"], resource_names=[PULL_SECRET], verbs=["get"]
            )
        )
    rbac.create_namespaced_role(
        namespace, client.V1Role(metadata=client.V1ObjectMeta(name=account), rules=rules)
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name=account),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name=account
            ),
            subjects=subject,
        ),
    )
    issued = core.create_namespaced_service_account_token(
        account,
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
        ),
    )
    assert issued.status is not None and issued.status.token
    token = str(issued.status.token)
    SECRETS.register(token)
    path = directory / f"{account}.kubeconfig"
    path.touch(mode=0o600)
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "lab",
                        "cluster": {
                            "server": lab.api.configuration.host,
                            "certificate-authority": lab.api.configuration.ssl_ca_cert,
                        },
                    }
                ],
                "users": [{"name": account, "user": {"token": token}}],
                "contexts": [{"name": account, "context": {"cluster": "lab", "user": account}}],
                "current-context": account,
            }
        )
    )
    return path


class RequestLog:
    """Every HTTP method the verifier's credentials sent, seen at the client's REST layer."""

    def __init__(self) -> None:
        self.methods: list[tuple[str, str]] = []
        self.tokens: set[str] = set()


@pytest.fixture(scope="module")
def request_log() -> Iterator[RequestLog]:
    log = RequestLog()
    original = rest.RESTClientObject.request

    def recording(
        self: rest.RESTClientObject,
        method: str,
        url: str,
        headers: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        sent = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
        if sent.get("authorization", "").removeprefix("Bearer ") in log.tokens:
            log.methods.append((method, url))
        return original(self, method, url, headers, *args, **kwargs)  # type: ignore[no-untyped-call]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rest.RESTClientObject, "request", recording)
        yield log


@pytest.fixture(scope="module")
def instructor(
    student_lab: ScenarioLab, request_log: RequestLog, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    path = _kubeconfig_for(
        student_lab, INSTRUCTOR, secret_reader=True, directory=tmp_path_factory.mktemp("verify")
    )
    request_log.tokens.add(yaml.safe_load(path.read_text())["users"][0]["user"]["token"])
    return path


def _grade(lab: ScenarioLab, kubeconfig: Path, context: str = INSTRUCTOR) -> dict[str, Result]:
    api = kube.api_client(kubeconfig, context)
    try:
        graded = verify(Student(context, lab.namespace), api)
    finally:
        api.close()
    assert graded.error is None, graded.error
    return {result.id: result for result in graded.results}


def _assert_only_fails(results: dict[str, Result], failing: set[str], lab: ScenarioLab) -> None:
    """Exactly `failing` fail, each with its own hint (for this namespace)."""
    assert {r.id for r in results.values() if not r.passed} == failing, {
        r.id: r.evidence for r in results.values() if not r.passed
    }
    for check in failing:
        assert results[check].hint == _expected_hint(check, lab.namespace)
        assert results[check].points == 0


def test_full_marks_from_get_requests_only(
    student_lab: ScenarioLab, instructor: Path, request_log: RequestLog, tmp_path: Path
) -> None:
    report = tmp_path / "verify.json"
    arguments = f"--kube-context {INSTRUCTOR} --format json --pass-mark 100".split()
    code = main(
        [
            "verify",
            *arguments,
            "--kubeconfig",
            str(instructor),
            "--namespace",
            student_lab.namespace,
            "--output",
            str(report),
        ]
    )
    document = yaml.safe_load(report.read_text())
    (student,) = document["students"]
    assert student["score"] == 100, [c for c in student["checks"] if not c["passed"]]
    assert code == 0
    assert request_log.methods, "the verifier's requests were not seen"
    assert {method for method, _ in request_log.methods} == {"GET"}, request_log.methods


def test_view_alone_cannot_grade_the_pull_secret(
    student_lab: ScenarioLab, request_log: RequestLog, tmp_path: Path
) -> None:
    viewer = _kubeconfig_for(student_lab, VIEWER, secret_reader=False, directory=tmp_path)
    results = _grade(student_lab, viewer, VIEWER)
    assert {r.id for r in results.values() if not r.passed} == {"pull-secret-type"}
    assert "could not read secrets (403" in results["pull-secret-type"].evidence
    assert "view excludes secrets" in (results["pull-secret-type"].hint or "")


def test_service_account_without_the_secret(student_lab: ScenarioLab, instructor: Path) -> None:
    core = client.CoreV1Api(student_lab.api)
    core.patch_namespaced_service_account(
        "default", student_lab.namespace, [{"op": "remove", "path": "/imagePullSecrets"}]
    )
    try:
        _assert_only_fails(
            _grade(student_lab, instructor), {"service-account-pull-secret"}, student_lab
        )
    finally:
        student_lab.add_pull_secret()


def test_secret_deleted(student_lab: ScenarioLab, instructor: Path) -> None:
    client.CoreV1Api(student_lab.api).delete_namespaced_secret(PULL_SECRET, student_lab.namespace)
    try:
        results = _grade(student_lab, instructor)
        _assert_only_fails(results, {"pull-secret-type"}, student_lab)
        assert (
            results["pull-secret-type"].evidence
            == f"no secret {PULL_SECRET} in {student_lab.namespace}"
        )
    finally:
        student_lab.add_pull_secret()


def test_secret_of_the_wrong_type(student_lab: ScenarioLab, instructor: Path) -> None:
    core = client.CoreV1Api(student_lab.api)
    core.delete_namespaced_secret(PULL_SECRET, student_lab.namespace)
    core.create_namespaced_secret(
        student_lab.namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=PULL_SECRET),
            type="Opaque",
            string_data={".dockerconfigjson": "{}"},
        ),
    )
    try:
        results = _grade(student_lab, instructor)
        _assert_only_fails(results, {"pull-secret-type"}, student_lab)
        assert "type Opaque" in results["pull-secret-type"].evidence
    finally:
        core.delete_namespaced_secret(PULL_SECRET, student_lab.namespace)
        student_lab.add_pull_secret()


def test_service_deleted(student_lab: ScenarioLab, instructor: Path) -> None:
    client.CoreV1Api(student_lab.api).delete_namespaced_service(SERVICE, student_lab.namespace)
    _assert_only_fails(_grade(student_lab, instructor), {"service-endpoint"}, student_lab)


def test_startup_probe_removed(student_lab: ScenarioLab, instructor: Path) -> None:
    (pod,) = student_lab.manifest(MANIFESTS[SLOW])
    del pod["spec"]["containers"][0]["startupProbe"]
    student_lab.delete_pod(SLOW)
    kube.apply(student_lab.api, [pod])
    results = _grade(student_lab, instructor)
    assert not results["slow-has-startup-probe"].passed
    assert results["slow-has-startup-probe"].evidence == "container app has no startupProbe"
    assert results["slow-has-startup-probe"].hint == _expected_hint(
        "slow-has-startup-probe", student_lab.namespace
    )


def test_good_pod_deleted(student_lab: ScenarioLab, instructor: Path) -> None:
    student_lab.delete_pod(GOOD)
    results = _grade(student_lab, instructor)
    assert not results["good-ready"].passed
    assert results["good-ready"].hint == _expected_hint("good-ready", student_lab.namespace)


def test_bad_pod_replaced_by_one_that_is_not_restarted(
    student_lab: ScenarioLab, instructor: Path, request_log: RequestLog
) -> None:
    """The old pod's events stay behind; they must not count for a new pod of that name."""
    (pod,) = student_lab.manifest(MANIFESTS[BAD])
    pod["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = 8080
    student_lab.delete_pod(BAD)
    kube.apply(student_lab.api, [pod])
    results = _grade(student_lab, instructor)
    for check in ("bad-restarted-by-liveness", "bad-crash-loop-back-off"):
        assert not results[check].passed, results[check].evidence
        assert results[check].hint == _expected_hint(check, student_lab.namespace)
    assert {method for method, _ in request_log.methods} == {"GET"}
