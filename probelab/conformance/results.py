"""Read what the suite reports: per spec its name, outcome, time and, when it failed, why.

e2e.test writes upstream's JUnit (`junit_01.xml`, the artifact CI systems read) and, with
`--report-complete-ginkgo`, ginkgo's full JSON report, which also carries each spec's
log. The log names the namespace the spec ran in, which ties our own pod watch to it.
"""

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probelab.i18n import _

PASSED = "passed"
SKIPPED = "skipped"
# How long a failure's reason may be in the summary; the reports keep all of it.
REASON_LINES = 3


@dataclass(frozen=True)
class SpecResult:
    """One spec of the run."""

    name: str
    state: str  # ginkgo's: passed, skipped, failed, timedout, interrupted, panicked, ...
    seconds: float
    reason: str  # why it failed or was skipped; empty when it passed
    text: str  # everything the report holds about it, for finding its namespace

    @property
    def failed(self) -> bool:
        return self.state not in (PASSED, SKIPPED, "pending")

    def namespaces(self, candidates: Iterable[str]) -> list[str]:
        """Which of `candidates` (namespaces the run made) this spec's log names."""
        return sorted(ns for ns in candidates if re.search(rf"\b{re.escape(ns)}\b", self.text))


def read_ginkgo_report(path: Path) -> list[SpecResult]:
    """The `It` specs of a ginkgo JSON report (a list of suite reports)."""
    suites: list[dict[str, Any]] = json.loads(path.read_text())
    return [
        _spec(report)
        for suite in suites
        for report in suite.get("SpecReports") or []
        if report.get("LeafNodeType") == "It"
    ]


def _spec(report: dict[str, Any]) -> SpecResult:
    name = " ".join(
        text for text in [*(report.get("ContainerHierarchyTexts") or []), report["LeafNodeText"]]
    )
    labels = [label for labels in report.get("ContainerHierarchyLabels") or [] for label in labels]
    labels += report.get("LeafNodeLabels") or []
    if labels:
        name += " " + " ".join(f"[{label}]" for label in labels)
    failure = report.get("Failure") or {}
    message = str(failure.get("Message") or "").strip()
    state = str(report.get("State", "unknown"))
    if state == "timedout" and not message:
        message = "timed out"
    reason = "\n".join(message.splitlines()[:REASON_LINES])
    return SpecResult(
        name=name,
        state=state,
        seconds=int(report.get("RunTime") or 0) / 1e9,
        reason=reason,
        text=json.dumps(report),
    )


def summary_line(specs: list[SpecResult]) -> str:
    ran = [spec for spec in specs if spec.state != SKIPPED]
    passed = sum(1 for spec in ran if spec.state == PASSED)
    skipped = len(specs) - len(ran)
    return _("{passed}/{ran} specs passed, {skipped} skipped").format(
        passed=passed, ran=len(ran), skipped=skipped
    )
