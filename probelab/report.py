"""The lab's report: one page per scenario and an index, in Markdown and in HTML.

A scenario's page holds its tests' outcomes, a picture of its pods over time
(`probelab.picture`), the `kubectl get pod -w` view and events from its timeline, and
`logs --previous` of every pod that restarted. The index lists every scenario with its
outcome and picture. Both formats are rendered from one list of blocks, so they always say
the same thing; every text passes through the secret mask. JUnit XML comes from pytest's
own `--junitxml`.

The logs are read by `record` before the scenario's namespace is deleted; the pages are
written at the end of the session, once every test's outcome is known.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from probelab.i18n import N_, _, current_language
from probelab.lab import Lab
from probelab.picture import draw
from probelab.secrets import SECRETS
from probelab.timeline import Timeline

INDEX = "index"
OUTCOME_ORDER = ("failed", "error", "passed", "skipped")


@dataclass(frozen=True)
class ScenarioRecord:
    """What a scenario leaves for its page, taken before its namespace goes."""

    name: str
    namespace: str
    timeline: Timeline
    previous_logs: Mapping[str, str]  # pod -> `kubectl logs --previous`
    ended: datetime  # when recording stopped: the right edge of the picture


@dataclass(frozen=True)
class Outcome:
    """One test's result, as pytest reported it."""

    test: str  # node id
    outcome: str  # passed | failed | error | skipped


def record(lab: Lab) -> ScenarioRecord:
    """Everything the page needs from the cluster: previous logs of restarted pods."""
    return ScenarioRecord(
        name=lab.scenario.name,
        namespace=lab.namespace,
        timeline=lab.timeline,
        previous_logs=lab.previous_logs(),
        ended=datetime.now(UTC),
    )


def outcomes(
    reports: Iterable[pytest.TestReport], scenario_of: Mapping[str, str]
) -> dict[str, list[Outcome]]:
    """Each scenario's tests, from pytest's reports (setup, call and teardown phases).

    A test failed if its call failed, is an error if another phase failed, else it has its
    call's outcome; `scenario_of` maps node ids to scenario names.
    """
    phases: dict[str, dict[str, str]] = {}
    for report in reports:
        if report.nodeid in scenario_of:
            phases.setdefault(report.nodeid, {})[report.when or ""] = report.outcome
    result: dict[str, list[Outcome]] = {}
    for nodeid, seen in phases.items():
        if seen.get("call") == "failed":
            outcome = "failed"
        elif "failed" in seen.values():
            outcome = "error"
        else:
            outcome = seen.get("call") or ("skipped" if "skipped" in seen.values() else "error")
        result.setdefault(scenario_of[nodeid], []).append(Outcome(nodeid, outcome))
    return result


def write_run(
    directory: Path,
    records: Sequence[ScenarioRecord],
    results: Mapping[str, Sequence[Outcome]],
) -> list[Path]:
    """Write every scenario's page and picture, then the index; returns the files."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for scenario in records:
        picture = draw(
            scenario.timeline,
            directory / f"{scenario.name}.png",
            scenario=scenario.name,
            end=scenario.ended,
        )
        page = _scenario_page(scenario, results.get(scenario.name, ()))
        written += [picture, *_write(directory, scenario.name, scenario.name, page)]
    title = _("probelab lab report")
    written += _write(directory, INDEX, title, _index_page(records, results))
    return written


# --- pages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    text: str
    page: str  # a page's stem: the extension is the format's own


@dataclass(frozen=True)
class Image:
    source: str
    alt: str
    width: int | None = None  # pixels, for thumbnails


Cell = str | Link | Image


@dataclass(frozen=True)
class Heading:
    text: str


@dataclass(frozen=True)
class Paragraph:
    cells: tuple[Cell, ...]  # run together, separated by spaces


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True)
class Code:
    text: str


Block = Heading | Paragraph | Table | Code


# How outcomes read on a page; the keys stay pytest's words.
OUTCOME_LABELS = {
    "failed": N_("failed"),
    "error": N_("error"),
    "passed": N_("passed"),
    "skipped": N_("skipped"),
}


def _outcome(outcome: str) -> str:
    return _(OUTCOME_LABELS[outcome]) if outcome in OUTCOME_LABELS else outcome


def _tally(tests: Sequence[Outcome]) -> str:
    if not tests:
        return _("no tests ran")
    counts = {o: sum(t.outcome == o for t in tests) for o in OUTCOME_ORDER}
    return ", ".join(f"{n} {_outcome(o)}" for o, n in counts.items() if n)


def _scenario_page(scenario: ScenarioRecord, tests: Sequence[Outcome]) -> list[Block]:
    pods = list(dict.fromkeys(o.pod for o in scenario.timeline.pods()))
    blocks: list[Block] = [
        Paragraph(
            (
                _("Namespace {namespace}; pods: {pods}.").format(
                    namespace=scenario.namespace, pods=", ".join(pods) or _("none")
                ),
                _("Tests: {tally}.").format(tally=_tally(tests)),
                Link(_("All scenarios"), INDEX),
            )
        ),
        Paragraph((Image(f"{scenario.name}.png", _over_time(scenario.name)),)),
        Heading(_("Tests")),
        Table((_("outcome"), _("test")), tuple((_outcome(t.outcome), t.test) for t in tests)),
        Heading(_("Pods and events (kubectl get pod -w, then events)")),
        Code(scenario.timeline.render(scenario.ended)),
    ]
    for pod, logs in scenario.previous_logs.items():
        blocks += [Heading(f"kubectl logs {pod} --previous"), Code(logs.rstrip())]
    return blocks


def _index_page(
    records: Sequence[ScenarioRecord], results: Mapping[str, Sequence[Outcome]]
) -> list[Block]:
    everything = [t for r in records for t in results.get(r.name, ())]
    rows = tuple(
        (
            Link(r.name, r.name),
            r.namespace,
            _tally(results.get(r.name, ())),
            Image(f"{r.name}.png", _over_time(r.name), width=360),
        )
        for r in records
    )
    return [
        Paragraph(
            (
                _("{count} scenarios; tests: {tally}.").format(
                    count=len(records), tally=_tally(everything)
                ),
            )
        ),
        Table((_("scenario"), _("namespace"), _("tests"), _("pods over time")), rows),
    ]


def _over_time(scenario: str) -> str:
    return _("{scenario}: pods over time").format(scenario=scenario)


def _write(directory: Path, stem: str, title: str, blocks: Sequence[Block]) -> list[Path]:
    markdown, page = directory / f"{stem}.md", directory / f"{stem}.html"
    markdown.write_text(SECRETS.mask(to_markdown(title, blocks)), encoding="utf-8")
    page.write_text(SECRETS.mask(to_html(title, blocks)), encoding="utf-8")
    return [markdown, page]


# --- Markdown ----------------------------------------------------------------------------


def _md_cell(cell: Cell) -> str:
    if isinstance(cell, Link):
        return f"[{cell.text}]({cell.page}.md)"
    if isinstance(cell, Image):
        return f"![{cell.alt}]({cell.source})"
    return cell.replace("|", "\\|")


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in the text."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def to_markdown(title: str, blocks: Sequence[Block]) -> str:
    parts = [f"# {title}"]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"## {block.text}")
        elif isinstance(block, Paragraph):
            parts.append(" ".join(_md_cell(c) for c in block.cells))
        elif isinstance(block, Table):
            lines = ["| " + " | ".join(block.headers) + " |", "|" + "---|" * len(block.headers)]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            parts.append("\n".join(lines) if block.rows else "(none)")
        else:
            fence = _fence(block.text)
            parts.append(f"{fence}text\n{block.text}\n{fence}")
    return "\n\n".join(parts) + "\n"


# --- HTML --------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
table { border-collapse: collapse; } td, th { border: 1px solid #ddd; padding: 0.3em 0.6em; }
th { background: #f0f0f0; text-align: left; } img { max-width: 100%; }
"""


def _html_cell(cell: Cell) -> str:
    if isinstance(cell, Link):
        return f'<a href="{html.escape(cell.page)}.html">{html.escape(cell.text)}</a>'
    if isinstance(cell, Image):
        width = f' width="{cell.width}"' if cell.width else ""
        image = f'<img src="{html.escape(cell.source)}" alt="{html.escape(cell.alt)}"{width}>'
        return f'<a href="{html.escape(cell.source)}">{image}</a>'
    return html.escape(cell)


def to_html(title: str, blocks: Sequence[Block]) -> str:
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{current_language()}"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h2>{html.escape(block.text)}</h2>")
        elif isinstance(block, Paragraph):
            parts.append("<p>" + " ".join(_html_cell(c) for c in block.cells) + "</p>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
            rows = "".join(
                "<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in row) + "</tr>"
                for row in block.rows
            )
            parts.append(f"<table><tr>{head}</tr>{rows}</table>" if block.rows else "<p>(none)</p>")
        else:
            parts.append(f"<pre>{html.escape(block.text)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
