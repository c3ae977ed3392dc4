"""Secrets are masked in every form they take in probelab's output.

Mask tests use a fresh SecretRegistry; tests of log masking use the process-wide
one (it is what masking reads) with values made unique per test, so nothing registered
here can mask another test's output.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import uuid
from collections.abc import Iterator

import pytest

from probelab.registries.base import Credentials, FixedRegistry
from probelab.secrets import SECRETS, SecretRegistry, install_log_masking


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def unique_secret() -> str:
    return f"s3cret-{uuid.uuid4().hex}"


@pytest.fixture
def registry() -> SecretRegistry:
    return SecretRegistry()


def test_plain_value_is_masked(registry: SecretRegistry) -> None:
    registry.register("correct-horse-battery")

    assert registry.mask("password=correct-horse-battery;") == "password=***;"


def test_base64_value_is_masked(registry: SecretRegistry) -> None:
    """Secrets in dockerconfigjson and Secret data appear base64-encoded."""
    registry.register("correct-horse-battery")

    assert registry.mask(f'"password": "{b64("correct-horse-battery")}"') == '"password": "***"'


def test_basic_auth_form_is_masked(registry: SecretRegistry) -> None:
    """`auth` in dockerconfigjson and the Authorization header carry base64(user:password)."""
    registry.register("correct-horse-battery", username="kube")
    # "kube:" is 5 bytes, so the password's own base64 is not a substring of this form.
    encoded = b64("kube:correct-horse-battery")
    assert b64("correct-horse-battery") not in encoded

    assert registry.mask(f"Authorization: Basic {encoded}") == "Authorization: Basic ***"


def test_basic_auth_form_is_found_without_the_username(registry: SecretRegistry) -> None:
    """A base64 run is decoded and searched, so `user:password` needs no known user."""
    registry.register("correct-horse-battery")
    encoded = b64("kube:correct-horse-battery")

    assert registry.mask(encoded) == "***"


def test_every_occurrence_is_masked(registry: SecretRegistry) -> None:
    registry.register("correct-horse-battery")

    assert registry.mask("correct-horse-battery correct-horse-battery") == "*** ***"


@pytest.mark.parametrize("short", ["", "a", "12345"])
def test_short_values_are_not_registered(registry: SecretRegistry, short: str) -> None:
    """Masking every `admin` or digit would make output unreadable; such values are ignored."""
    registry.register(short)

    assert registry.mask("login admin 12345 a") == "login admin 12345 a"


def test_six_characters_are_enough(registry: SecretRegistry) -> None:
    registry.register("abcdef")

    assert registry.mask("x abcdef x") == "x *** x"


def test_longer_secret_is_masked_whole(registry: SecretRegistry) -> None:
    """When one secret contains another, the longer one wins and leaves no tail behind."""
    registry.register("token-abcdef")
    registry.register("token-abcdef-extended")

    assert registry.mask("token-abcdef-extended") == "***"


def test_text_without_secrets_is_unchanged(registry: SecretRegistry) -> None:
    registry.register("correct-horse-battery")

    assert registry.mask("nothing to hide here") == "nothing to hide here"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of our own with a real stream handler, removed again afterwards."""
    logger = logging.getLogger(f"probelab-test-{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    yield logger, stream
    logger.removeHandler(handler)


@pytest.fixture
def masking() -> Iterator[None]:
    """Masking installed for the test, and the process's record factory restored after."""
    original = logging.getLogRecordFactory()
    install_log_masking()
    yield
    logging.setLogRecordFactory(original)


def test_masks_a_message_formatted_from_args(
    captured: tuple[logging.Logger, io.StringIO], masking: None
) -> None:
    """The secret often arrives as a %-argument, so masking must see the formatted text."""
    logger, stream = captured
    secret = unique_secret()
    SECRETS.register(secret, username="kube")

    logger.warning("login with %s failed (auth %s)", secret, b64(f"kube:{secret}"))

    assert stream.getvalue() == "WARNING login with *** failed (auth ***)\n"


def test_leaves_other_records_intact(
    captured: tuple[logging.Logger, io.StringIO], masking: None
) -> None:
    logger, stream = captured

    logger.info("started %s with %d retries", "etcd", 3)

    assert stream.getvalue() == "INFO started etcd with 3 retries\n"


def test_installing_twice_wraps_the_factory_once(masking: None) -> None:
    installed = logging.getLogRecordFactory()

    install_log_masking()

    assert logging.getLogRecordFactory() is installed


def test_masks_records_of_child_and_third_party_loggers(
    captured: tuple[logging.Logger, io.StringIO], masking: None
) -> None:
    """Modules log through `getLogger(__name__)`, children of a parent with the handler."""
    logger, stream = captured
    secret = unique_secret()
    SECRETS.register(secret)

    logging.getLogger(f"{logger.name}.clusters.local.processes").warning("password %s", secret)

    assert stream.getvalue() == "WARNING password ***\n"


def test_whole_docker_config_json_and_its_base64_are_masked() -> None:
    """What a `kubernetes.io/dockerconfigjson` Secret stores, and `pytest -l` would show."""
    secret = unique_secret()
    registry = FixedRegistry("registry.example:5443", Credentials("kube", secret))
    config = registry.docker_config_json()
    stored = b64(config)

    assert SECRETS.mask(f"data: {stored}") == "data: ***"
    assert SECRETS.mask(config) == "***"


@pytest.mark.parametrize("prefix", ["", "x", "xy"])  # base64 groups 3 bytes: every offset
def test_base64_of_any_json_holding_the_password_is_masked(
    registry: SecretRegistry, prefix: str
) -> None:
    """The secret's own base64 is not a substring when it sits at another byte offset."""
    registry.register("correct-horse-battery")
    document = json.dumps({"note": prefix, "password": "correct-horse-battery"})
    encoded = b64(document)

    assert registry.mask(f"blob {encoded} end") == "blob *** end"


def test_base64_without_a_secret_is_left_alone(registry: SecretRegistry) -> None:
    registry.register("correct-horse-battery")
    harmless = b64(json.dumps({"auths": {"example": {"username": "kube"}}}))

    assert registry.mask(harmless) == harmless


def test_json_escaped_form_is_masked(registry: SecretRegistry) -> None:
    """A PEM key inside JSON (a kubeconfig as JSON, an API body) has `\\n` for newlines."""
    key = "-----BEGIN KEY-----\nMHcCAQEEIabc\n-----END KEY-----\n"
    registry.register(key)

    assert registry.mask(json.dumps({"key": key})) == '{"key": "***"}'


def test_traceback_of_a_logged_exception_is_masked(
    captured: tuple[logging.Logger, io.StringIO], masking: None
) -> None:
    """`log.exception` (exc_info) formats the exception's message into the traceback."""
    logger, stream = captured
    secret = unique_secret()
    SECRETS.register(secret)
    try:
        raise RuntimeError(f"login refused for {secret}")
    except RuntimeError:
        logger.exception("push failed")

    text = stream.getvalue()
    assert "RuntimeError: login refused for ***" in text
    assert secret not in text
