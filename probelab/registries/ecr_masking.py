"""Keep ECR tokens out of pytest's own output and out of every log record.

probelab masks what it writes itself, but pytest writes more: tracebacks with local
variables (`-l`), assertion introspection, captured stdout/stderr/log sections, JUnit XML,
live logs; and botocore logs whole responses, token included, at DEBUG. So every log
record's message is masked when the record is made, and every test report is masked before
any reporter (terminal, JUnit, xdist) sees it.
"""

import logging
from collections.abc import Generator
from typing import Any

import pytest

from probelab.secrets import SECRETS

PLUGIN_NAME = "probelab-secret-masking"


class ReportMasking:
    """A pytest plugin object: masks secrets in each test report as it is made."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if report.longrepr is not None:
            text = str(report.longrepr)
            if (masked := SECRETS.mask(text)) != text:
                report.longrepr = masked
        report.sections = [(title, SECRETS.mask(body)) for title, body in report.sections]
        return report


def install(config: pytest.Config) -> None:
    """Mask pytest's reports and every log record from now on (idempotent)."""
    if not config.pluginmanager.has_plugin(PLUGIN_NAME):
        config.pluginmanager.register(ReportMasking(), PLUGIN_NAME)
    _mask_log_records()


def _mask_log_records() -> None:
    current = logging.getLogRecordFactory()
    if getattr(current, "masks_secrets", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string is logging's to report
            return record
        if (masked := SECRETS.mask(message)) != message:
            record.msg, record.args = masked, None
        return record

    factory.masks_secrets = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
