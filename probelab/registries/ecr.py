"""The ECR registry provider: repository, authorization token, refreshed before it expires.

Credentials come from boto3's own chain (environment, shared files, SSO, container and
instance roles); probelab keeps no AWS keys of its own. The account is whoever STS says the
caller is. ECR authenticates Docker and kubelet with basic auth, user `AWS` and a password
from GetAuthorizationToken that is valid for 12 hours, so the token is kept with its expiry
and fetched again when it is due. The clock and the lifetime are injectable, so a test can
prove the refresh without waiting 12 hours.
"""

import argparse
import base64
import difflib
import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.exceptions
import botocore.session

from probelab.errors import ProbelabError
from probelab.registries.base import Credentials, Registry
from probelab.secrets import SECRETS

log = logging.getLogger(__name__)

DEFAULT_REGION = "ap-northeast-2"  # the seed's
DEFAULT_REPOSITORY = "fastapi-health"  # the seed's
# What AWS promises for a token; used when the endpoint's own expiry cannot be believed.
TOKEN_LIFETIME = timedelta(hours=12)
# Fetch a new token this long before the old one expires, so no pull races the expiry.
REFRESH_BEFORE = timedelta(minutes=15)
# ECR's own rule for repository names (CreateRepository's `repositoryName` constraint).
_NAME = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*")
_NAME_LENGTH = range(2, 257)
_XML_MESSAGE = re.compile(r"<Code>(?P<code>[^<]*)</Code><Message>(?P<message>[^<]*)</Message>")
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}
_BAD_CREDENTIALS = {
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
}


def utc_now() -> datetime:
    return datetime.now(UTC)


def check_region(region: str) -> str:
    """`region` if botocore knows ECR there (in any partition), else a one-line error."""
    session = botocore.session.get_session()  # endpoint data only: no profile is read
    known = {
        name
        for partition in session.get_available_partitions()
        for name in session.get_available_regions("ecr", partition_name=partition)
    }
    if region in known:
        return region
    close = difflib.get_close_matches(region, sorted(known), n=3)
    if close:
        hint = f"; did you mean {' or '.join(filter(None, [', '.join(close[:-1]), close[-1]]))}?"
    else:
        hint = f"; known: {', '.join(sorted(known))}"
    raise ProbelabError(f"unknown AWS region {region!r} for ECR{hint}")


def check_repository_name(name: str) -> str:
    """`name` if ECR would accept it as a repository name, else a one-line error."""
    if len(name) in _NAME_LENGTH and _NAME.fullmatch(name):
        return name
    raise ProbelabError(
        f"invalid ECR repository name {name!r}: 2-256 characters, lowercase letters and "
        "digits, separated by single '.', '_', '-' or '/' (e.g. team/fastapi-health)"
    )


def region_option(value: str) -> str:
    """`--ecr-region`: a typo is a usage error before anything runs."""
    try:
        return check_region(value)
    except ProbelabError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def repository_option(value: str) -> str:
    """`--ecr-repository`: an invalid name is a usage error before anything runs."""
    try:
        return check_repository_name(value)
    except ProbelabError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def credential_chain(session: boto3.Session) -> list[str]:
    """The names of the credential providers boto3 tries, in order."""
    resolver = session._session.get_component("credential_provider")
    return [str(provider.METHOD) for provider in resolver.providers]


@dataclass(frozen=True)
class Token:
    """One authorization token: the basic-auth pair and when probelab stops using it."""

    credentials: Credentials
    due: datetime


class EcrRegistry(Registry):
    """One ECR repository, in the caller's account and the given region."""

    name = "ecr"

    def __init__(
        self,
        region: str | None = None,
        repository: str = DEFAULT_REPOSITORY,
        *,
        session: boto3.Session | None = None,
        clock: Callable[[], datetime] = utc_now,
        lifetime: timedelta | None = None,
        refresh_before: timedelta = REFRESH_BEFORE,
    ) -> None:
        """`region`: default boto3's (AWS_REGION, the profile), else the seed's.
        `lifetime`: how long a token is used (default: until the expiry ECR states)."""
        try:
            self.session = session or boto3.Session()
        except botocore.exceptions.ProfileNotFound as error:
            raise ProbelabError(f"{error}: check AWS_PROFILE or ~/.aws/config") from None
        self.region = check_region(region or self.session.region_name or DEFAULT_REGION)
        self.repository_name = check_repository_name(repository)
        self._ecr = self.session.client("ecr", region_name=self.region)
        self._sts = self.session.client("sts", region_name=self.region)
        self._clock = clock
        self._lifetime = lifetime
        self._refresh_before = refresh_before
        self._lock = threading.Lock()
        self._token: Token | None = None
        self._listeners: list[Callable[[Credentials], None]] = []
        self._uri: str | None = None
        self.account: str | None = None
        self.created: bool | None = None
        self.token_fetches = 0

    # -- AWS calls, each turning AWS's failures into one clear line --------------------------

    @contextmanager
    def _aws(self, action: str) -> Iterator[None]:
        try:
            yield
        except botocore.exceptions.NoCredentialsError as error:
            chain = ", ".join(credential_chain(self.session))
            raise ProbelabError(
                f"no AWS credentials for {action}: boto3 tried {chain}; set AWS_PROFILE, "
                "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run `aws configure`"
            ) from error
        except botocore.exceptions.ClientError as error:
            raise ProbelabError(SECRETS.mask(self._client_error(action, error))) from error
        except botocore.exceptions.BotoCoreError as error:
            raise ProbelabError(SECRETS.mask(f"{action} failed: {error}")) from error

    def _client_error(self, action: str, error: botocore.exceptions.ClientError) -> str:
        info: dict[str, Any] = error.response.get("Error", {})
        code, message = str(info.get("Code", "")), str(info.get("Message", error))
        if xml := _XML_MESSAGE.search(message):  # moto answers auth failures in XML
            code, message = xml["code"], xml["message"]
        if code in _DENIED:
            return f"AWS denied {action} in {self.region}: {message}"
        if code in _BAD_CREDENTIALS:
            method = getattr(self.session.get_credentials(), "method", "boto3's chain")
            return f"AWS rejected the credentials from {method} ({code}) for {action}: {message}"
        if code == "InvalidParameterException":
            return f"ECR refused {action}: {message}"
        return f"{action} failed ({code}): {message}"

    def caller_account(self) -> str:
        """The account the credentials belong to (`aws sts get-caller-identity`)."""
        if self.account is None:
            with self._aws("sts:GetCallerIdentity"):
                self.account = str(self._sts.get_caller_identity()["Account"])
        return self.account

    def ensure_repository(self) -> str:
        """The repository's URI, creating the repository when it is missing.

        `created` says which happened; an existing repository is reported, not an error.
        """
        found = self._describe_repository()
        self.created = False
        if found is None:
            found = self._create_repository()
            self.created = found is not None
        if found is None:  # created by someone else between our two calls
            found = self._describe_repository()
        if found is None:
            raise ProbelabError(f"ECR repository {self.repository_name} was deleted meanwhile")
        self._uri = str(found["repositoryUri"])
        return self._uri

    def _create_repository(self) -> dict[str, Any] | None:
        with self._aws(f"ecr:CreateRepository {self.repository_name}"):
            try:
                created: dict[str, Any] = self._ecr.create_repository(
                    repositoryName=self.repository_name
                )["repository"]
            except self._ecr.exceptions.RepositoryAlreadyExistsException:
                return None
        return created

    def _describe_repository(self) -> dict[str, Any] | None:
        account = self.caller_account()
        with self._aws(f"ecr:DescribeRepositories {self.repository_name}"):
            try:
                found: dict[str, Any] = self._ecr.describe_repositories(
                    registryId=account, repositoryNames=[self.repository_name]
                )["repositories"][0]
            except self._ecr.exceptions.RepositoryNotFoundException:
                return None
        return found

    @property
    def endpoint_url(self) -> str:
        return str(self._ecr.meta.endpoint_url)

    # -- the Registry interface ------------------------------------------------------------

    @property
    def repository_uri(self) -> str:
        return self._uri or self.ensure_repository()

    @property
    def host(self) -> str:
        return self.repository_uri.split("/", 1)[0]

    def repository(self, name: str) -> str:
        """Every image goes to the one repository this provider ensured: ECR does not
        create repositories on push."""
        return self.repository_uri

    def credentials(self) -> Credentials:
        """The current token's `AWS`/password pair, fetching a new token when it is due."""
        with self._lock:
            token = self._token
            if token is None or self._clock() >= token.due:
                token = self._token = self._fetch_token()
                listeners = list(self._listeners)
            else:
                listeners = []
        for listener in listeners:
            listener(token.credentials)
        return token.credentials

    # -- the token's lifetime --------------------------------------------------------------

    def on_new_token(self, listener: Callable[[Credentials], None]) -> None:
        """Call `listener` with every token fetched from now on."""
        with self._lock:
            self._listeners.append(listener)

    def seconds_until_due(self) -> float:
        """How long the current token stays in use (0 when none was fetched yet)."""
        with self._lock:
            token = self._token
        if token is None:
            return 0.0
        return max(0.0, (token.due - self._clock()).total_seconds())

    def _fetch_token(self) -> Token:
        issued = self._clock()
        with self._aws("ecr:GetAuthorizationToken"):
            data = self._ecr.get_authorization_token()["authorizationData"][0]
        self.token_fetches += 1
        username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        # Credentials registers the password, and `AWS:password` in base64 (the token itself).
        credentials = Credentials(username, password)
        return Token(credentials, self._due(issued, data["expiresAt"]))

    def _due(self, issued: datetime, expires_at: datetime) -> datetime:
        if self._lifetime is not None:
            expires_at = issued + self._lifetime
        elif expires_at <= issued:
            # moto dates every token 2015; from AWS this means the machine's clock is off.
            log.warning(
                "the ECR token's expiry %s is not after now (%s); assuming ECR's 12 hours",
                expires_at.isoformat(),
                issued.isoformat(timespec="seconds"),
            )
            expires_at = issued + TOKEN_LIFETIME
        return max(issued, expires_at - self._refresh_before)


def is_stand_in(registry: EcrRegistry) -> bool:
    """Whether the ECR API answers on this machine (moto), so its registry host is not real."""
    host = urlsplit(registry.endpoint_url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")
