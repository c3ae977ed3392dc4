"""Keep credentials out of every line probelab writes.

Registry passwords, ECR tokens and private keys are registered here the moment they are
created or read. `mask` replaces them in any text before it is logged, reported or raised,
in every form they take: plain, JSON-escaped, base64 (dockerconfigjson, Secret data),
base64 of `user:password` (basic auth), and any base64 run whose decoded text holds one
(the whole `.dockerconfigjson` as a Secret stores it, or any JSON carrying a password).
`install_log_masking` applies it to every log record of the process, tracebacks included.
"""

import base64
import binascii
import json
import logging
import re
import threading
import traceback
from typing import Any

_MASK = "***"
_MIN_SECRET_LENGTH = 6
# A base64 run long enough to carry a secret; shorter runs cannot hold a 6-character one.
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{8,}={0,2}")


class SecretRegistry:
    """The set of secret strings seen in this process, with their encoded forms."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plain: set[str] = set()
        self._encoded: set[str] = set()

    def register(self, value: str, *, username: str | None = None) -> None:
        """Remember `value` (and `username:value` as basic auth encodes it) as secret."""
        if len(value) < _MIN_SECRET_LENGTH:
            return
        escaped = json.dumps(value)[1:-1]  # a PEM key's newlines are `\\n` inside JSON
        encoded = {_b64(value), _b64(escaped)}
        if username is not None:
            encoded.add(_b64(f"{username}:{value}"))
        with self._lock:
            self._plain |= {value, escaped}
            self._encoded |= encoded

    def mask(self, text: str) -> str:
        """Return `text` with every registered secret replaced by a fixed marker.

        Plain forms go first (a whole registered document is masked whole), then every
        base64 run that decodes to a secret (before a secret's own base64 inside it could
        be cut out, leaving the rest of the run readable), then the base64 forms left.
        """
        with self._lock:
            plain = sorted(self._plain, key=len, reverse=True)
            encoded = sorted(self._encoded, key=len, reverse=True)
        if not plain:
            return text
        for value in plain:
            text = text.replace(value, _MASK)
        text = _BASE64_RUN.sub(
            lambda run: _MASK if _holds(run.group(), plain) else run.group(), text
        )
        for value in encoded:
            text = text.replace(value, _MASK)
        return text


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _holds(run: str, plain: list[str]) -> bool:
    """Whether the base64 `run` decodes to text containing a secret (at any alignment of
    the secret inside it, which is why the secret's own base64 form is not enough)."""
    padded = run + "=" * (-len(run) % 4)
    try:
        decoded = base64.b64decode(padded, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return False
    return any(value in decoded for value in plain)


SECRETS = SecretRegistry()


def _masked(record: logging.LogRecord) -> logging.LogRecord:
    try:
        record.msg = SECRETS.mask(record.getMessage())
    except Exception:  # a malformed call is the handler's to report, unchanged
        return record
    record.args = None
    if record.exc_info and record.exc_info[0] is not None:
        # Formatters print `exc_text` when it is set; the exception itself may hold a secret.
        record.exc_text = SECRETS.mask("".join(traceback.format_exception(*record.exc_info)))
        record.exc_info = None
    if record.stack_info:
        record.stack_info = SECRETS.mask(record.stack_info)
    return record


def install_log_masking() -> None:
    """Mask secrets in every log record this process creates, from any logger (idempotent).

    A record factory rather than a filter: a logger's filters never see its children's
    records, and third-party loggers (urllib3, docker) may carry credentials too.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "masks_secrets", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return _masked(previous(*args, **kwargs))

    factory.masks_secrets = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
