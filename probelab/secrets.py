"""Keep credentials out of every line probelab writes.

Registry passwords, ECR tokens and private keys are registered here the moment they are
created or read. `mask` replaces them (and their base64 forms, which is how they appear in
dockerconfigjson and basic-auth headers) in any text before it is logged, reported or
raised; `install_log_masking` applies it to every log record of the process.
"""

import base64
import logging
import threading
from typing import Any

_MASK = "***"
_MIN_SECRET_LENGTH = 6


class SecretRegistry:
    """The set of secret strings seen in this process, with their encoded forms."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()

    def register(self, value: str, *, username: str | None = None) -> None:
        """Remember `value` (and `username:value` as basic auth encodes it) as secret."""
        if len(value) < _MIN_SECRET_LENGTH:
            return
        forms = {value, _b64(value)}
        if username is not None:
            forms.add(_b64(f"{username}:{value}"))
        with self._lock:
            self._values |= forms

    def mask(self, text: str) -> str:
        """Return `text` with every registered secret replaced by a fixed marker."""
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for value in values:
            text = text.replace(value, _MASK)
        return text


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


SECRETS = SecretRegistry()


def _masked(record: logging.LogRecord) -> logging.LogRecord:
    try:
        record.msg = SECRETS.mask(record.getMessage())
    except Exception:  # a malformed call is the handler's to report, unchanged
        return record
    record.args = None
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
