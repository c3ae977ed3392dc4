"""Cleanup that always finishes: every step runs, whatever failed before it.

Teardown code that stops at its first failure leaves everything after it behind (processes,
iptables chains, namespaces). `Cleanup` runs each step, keeps each failure with the step's
name, and raises them together once every step has had its turn.
"""

from collections.abc import Callable

from probelab.errors import ProbelabError
from probelab.i18n import _
from probelab.secrets import SECRETS


class CleanupError(ProbelabError):
    """Some cleanup steps failed; all of them ran."""

    exit_code = 1

    def __init__(self, what: str, failures: list[str]) -> None:
        self.failures = failures
        super().__init__(
            _("{what}: {count} step(s) failed: {failures}").format(
                what=what, count=len(failures), failures="; ".join(failures)
            )
        )


class Cleanup:
    """Collects the failures of independent cleanup steps of one teardown."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.failures: list[str] = []

    def run(self, step: str, action: Callable[[], object]) -> None:
        """Run `action`; a failure is remembered, never raised here.

        Only `Exception`: Ctrl-C still interrupts a teardown the user wants to abandon.
        """
        try:
            action()
        except Exception as error:  # every kind of failure must let the next step run
            self.failures.append(SECRETS.mask(f"{step}: {error}".strip()))

    def check(self) -> None:
        """Raise every failure seen, together, if there was any."""
        if self.failures:
            raise CleanupError(self.what, self.failures)
