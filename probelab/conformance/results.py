"""Read what the suite reports: per spec its name, outcome, time and, when it failed, why.

e2e.test writes upstream's JUnit (`junit_01.xml`, the artifact CI systems read) and, with
`--report-complete-ginkgo`, ginkgo's full JSON report, which also carries each spec's
log. The log names the namespace the spec ran in, which ties our own pod watch to it.
"""

import json
import re
from collections.abc import Iterable, Sequence
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


def read_ginkgo_report(path: Path, focus: Sequence[str] = (r".",)) -> list[SpecResult]:
    """The `It` specs in `focus` of a ginkgo JSON report (a list of suite reports).

    The report lists every spec of e2e.test, thousands skipped by the focus; only the
    focused ones are kept.
    """
    suites: list[dict[str, Any]] = json.loads(path.read_text())
    wanted = [re.compile(pattern) for pattern in focus]
    return [
        _spec(report)
        for suite in suites
        for report in suite.get("SpecReports") or []
        if report.get("LeafNodeType") == "It" and any(w.search(_name(report)) for w in wanted)
    ]


def _name(report: dict[str, Any]) -> str:
    # Upstream's leaf texts carry their labels already ("... [NodeConformance]").
    return " ".join([*(report.get("ContainerHierarchyTexts") or []), report["LeafNodeText"]])


def _spec(report: dict[str, Any]) -> SpecResult:
    name = _name(report)
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
