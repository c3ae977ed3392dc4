"""Keep credentials out of every line probelab writes.

Registry passwords, ECR tokens and private keys are registered here the moment they are
created or read. `mask` replaces them (and their base64 forms, which is how they appear in
dockerconfigjson and basic-auth headers) in any text before it is logged, reported or
raised; the logging filter applies it to every record of the `probelab` loggers.
"""

import base64
import logging
import threading

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


class MaskingFilter(logging.Filter):
    """A logging filter that masks secrets in the fully formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = SECRETS.mask(record.getMessage())
        record.args = None
        return True


def install_log_masking(logger_name: str = "probelab") -> None:
    """Attach the masking filter to probelab's logger and its handlers (idempotent)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, MaskingFilter) for f in logger.filters):
        logger.addFilter(MaskingFilter())
