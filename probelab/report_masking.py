"""Keep secrets out of pytest's own output, for every registry.

probelab masks what it writes itself, but pytest writes more: tracebacks with local
variables (`-l`), assertion introspection, captured stdout/stderr/log sections, JUnit XML.
So every test report is masked before any reporter (terminal, JUnit, xdist) sees it, and
every log record is masked when it is made (`probelab.secrets.install_log_masking`).
"""

from collections.abc import Generator

import pytest

from probelab.secrets import SECRETS, install_log_masking

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
    install_log_masking()
