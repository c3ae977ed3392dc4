"""The ECR provider against moto in server mode: repository, token, refresh, masking, errors.

No cluster and no Docker engine: a moto server on 127.0.0.1 answers STS and ECR over HTTP,
and boto3 reaches it through AWS_ENDPOINT_URL, as it would reach AWS. Bad input is also
checked through the plugin (`--registry=ecr`) in a pytest subprocess, so what is asserted
is what a user sees.
"""

import base64
import json
import re
from datetime import timedelta
from pathlib import Path

import boto3
import pytest

from probelab import report_masking
from probelab.aws_stub import ACCOUNT, ManualClock, MotoServer
from probelab.errors import ProbelabError
from probelab.registries.base import Credentials
from probelab.registries.ecr import REFRESH_BEFORE, TOKEN_LIFETIME, EcrRegistry

pytest_plugins = ["probelab.aws_stub"]
REGION = "ap-northeast-2"
HOST = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
MOTO_PASSWORD = f"{ACCOUNT}-auth-token"  # what moto issues, every time

USES_REGISTRY = """
def test_registry(registry):
    pass
"""
ECR_ARGS = ("--registry=ecr", "--cluster=existing", "--kube-context=never-reached")


def test_repository_is_created_when_missing_and_reported_when_there(aws: MotoServer) -> None:
    first = EcrRegistry(REGION)
    assert first.ensure_repository() == f"{HOST}/fastapi-health"
    assert first.created is True
    assert first.account == ACCOUNT

    second = EcrRegistry(REGION)
    assert second.ensure_repository() == f"{HOST}/fastapi-health"
    assert second.created is False


def test_running_again_is_idempotent(aws: MotoServer) -> None:
    runs = [EcrRegistry(REGION, "team/fastapi-health") for _ in range(2)]
    configs = []
    for registry in runs:
        registry.ensure_repository()
        configs.append([registry.docker_config_json() for _ in range(3)])
        assert registry.token_fetches == 1  # the token is reused while it is valid
    assert configs[0][0] == configs[1][-1]
    names = boto3.client("ecr", region_name=REGION).describe_repositories()["repositories"]
    assert [r["repositoryName"] for r in names] == ["team/fastapi-health"]
    assert runs[0].repository("anything") == f"{HOST}/team/fastapi-health"


def test_pull_secret_is_basic_auth_for_the_ecr_host(aws: MotoServer) -> None:
    registry = EcrRegistry(REGION)
    auths = json.loads(registry.docker_config_json())["auths"]
    assert list(auths) == [HOST]
    assert base64.b64decode(auths[HOST]["auth"]).decode() == f"AWS:{MOTO_PASSWORD}"
    assert auths[HOST]["username"] == "AWS"


def test_expired_token_is_fetched_again_and_announced(aws: MotoServer) -> None:
    clock = ManualClock()
    registry = EcrRegistry(REGION, clock=clock)
    seen: list[Credentials] = []
    registry.on_new_token(seen.append)

    registry.credentials()
    # moto dates its tokens 2015; the provider then assumes ECR's 12 hours.
    usable = TOKEN_LIFETIME - REFRESH_BEFORE
    assert registry.seconds_until_due() == usable.total_seconds()
    clock.now += usable - timedelta(seconds=1)
    registry.credentials()
    assert registry.token_fetches == 1

    clock.now += timedelta(seconds=1)
    assert registry.seconds_until_due() == 0
    assert registry.credentials().password == MOTO_PASSWORD
    assert registry.token_fetches == 2
    assert len(seen) == 2


def test_lifetime_is_injectable(aws: MotoServer) -> None:
    clock = ManualClock()
    registry = EcrRegistry(
        REGION, clock=clock, lifetime=timedelta(seconds=30), refresh_before=timedelta(0)
    )
    registry.credentials()
    assert registry.seconds_until_due() == 30
    clock.now += timedelta(seconds=30)
    registry.credentials()
    assert registry.token_fetches == 2


# -- bad input: one clear line, non-zero exit ------------------------------------------------


def test_region_typo_names_the_likely_region(aws: MotoServer) -> None:
    with pytest.raises(ProbelabError, match=r"unknown AWS region 'ap-northeast-22'.*ap-north"):
        EcrRegistry("ap-northeast-22")


def test_region_typo_is_a_usage_error(pytester: pytest.Pytester, aws: MotoServer) -> None:
    pytester.makepyfile(USES_REGISTRY)
    result = pytester.runpytest_subprocess(*ECR_ARGS, "--ecr-region=us-est-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--ecr-region: unknown AWS region 'us-est-1' for ECR; did you mean *us-east-1*"]
    )


@pytest.mark.parametrize("name", ["FastAPI", "a", "team//app", "-app", "app_", "app:1.0"])
def test_invalid_repository_name_is_refused_before_any_call(aws: MotoServer, name: str) -> None:
    with pytest.raises(ProbelabError, match=f"invalid ECR repository name '{re.escape(name)}'"):
        EcrRegistry(REGION, name)


def test_invalid_repository_name_is_a_usage_error(
    pytester: pytest.Pytester, aws: MotoServer
) -> None:
    pytester.makepyfile(USES_REGISTRY)
    result = pytester.runpytest_subprocess(*ECR_ARGS, "--ecr-repository=Team/App")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--ecr-repository: invalid ECR repository name 'Team/App'*"])


def test_no_credentials_names_the_chain_boto3_tried(
    pytester: pytest.Pytester, moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    moto.reset()
    moto.use(monkeypatch, tmp_path, credentials=False)
    pytester.makepyfile(USES_REGISTRY)
    result = pytester.runpytest_subprocess(*ECR_ARGS)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*no AWS credentials for sts:GetCallerIdentity: boto3 tried env, assume-role, "
            "*shared-credentials-file, *iam-role; set AWS_PROFILE*"
        ]
    )


def test_access_denied_says_what_was_denied(
    pytester: pytest.Pytester, aws: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    iam = boto3.client("iam", region_name=REGION)
    iam.create_user(UserName="student")
    only_sts = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"}],
    }
    policy = iam.create_policy(PolicyName="only-sts", PolicyDocument=json.dumps(only_sts))
    iam.attach_user_policy(UserName="student", PolicyArn=policy["Policy"]["Arn"])
    key = iam.create_access_key(UserName="student")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    aws.require_auth()

    pytester.makepyfile(USES_REGISTRY)
    result = pytester.runpytest_subprocess(*ECR_ARGS, f"--ecr-region={REGION}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*AWS denied ecr:DescribeRepositories fastapi-health in ap-northeast-2: "
            "User: arn:aws:iam::123456789012:user/student is not authorized*"
        ]
    )


def test_unknown_profile_is_one_line(aws: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(ProbelabError, match=r"\(no-such-profile\) could not be found: check"):
        EcrRegistry(REGION)


def test_rejected_credentials_name_where_they_came_from(
    aws: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws.require_auth()  # moto now checks keys against its IAM users: "testing" is none
    with pytest.raises(ProbelabError, match=r"AWS rejected the credentials from env \(\w+\)"):
        EcrRegistry(REGION).ensure_repository()


# -- the token never reaches pytest's output -------------------------------------------------

LEAKY_TEST = """
import base64
import logging

from probelab.registries import ecr


def test_leaks_the_token():
    password = ecr.EcrRegistry("ap-northeast-2").credentials().password
    print("the token is", password, base64.b64encode(f"AWS:{password}".encode()).decode())
    logging.getLogger("demo").warning("token: %s", password)
    assert password == "something else"
"""


@pytest.mark.parametrize("mask", [False, True], ids=["unmasked-control", "masked"])
def test_token_never_appears_in_captured_output(
    pytester: pytest.Pytester, aws: MotoServer, mask: bool
) -> None:
    """The plugin masks every report; the control blocks its masking plugin by name."""
    pytester.makepyfile(LEAKY_TEST)
    junit = pytester.path / "junit.xml"
    args = ["-l", "-rA", "--log-level=DEBUG", f"--junitxml={junit}", "--registry=ecr"]
    control = [] if mask else ["-p", f"no:{report_masking.PLUGIN_NAME}"]
    result = pytester.runpytest_subprocess(*args, *control)
    result.assert_outcomes(failed=1)
    output = result.stdout.str() + result.stderr.str() + junit.read_text()
    encoded = base64.b64encode(f"AWS:{MOTO_PASSWORD}".encode()).decode()
    if mask:
        assert MOTO_PASSWORD not in output
        assert encoded not in output
        assert "the token is ***" in output
    else:  # the control: without masking pytest does print it, so the check above can fail
        assert MOTO_PASSWORD in output
        assert encoded in output  # the captured stdout section
