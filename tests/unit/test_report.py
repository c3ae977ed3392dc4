"""The report and its pictures, from timelines made here (no cluster).

A Korean picture draws its words in a font that has their glyphs or, with no such font on
the system, stays English and says so once (never empty boxes in place of Hangul).

Pods and events are written as the API's JSON and turned into the client's models by its
own deserializer, as a watch would deliver them.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import ApiClient
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image, ImageColor

from probelab import picture
from probelab.picture import CRASH_LOOP, NOT_READY, READY, STARTING, band_of, draw
from probelab.report import Code as CodeBlock
from probelab.report import Outcome, ScenarioRecord, outcomes, to_markdown, write_run
from probelab.secrets import SECRETS
from probelab.timeline import Timeline

T0 = datetime(2026, 1, 31, 6, 0, 0, tzinfo=UTC)
DESERIALIZER = ApiClient()
SECRET = "hunter2-registry-password"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def model(data: dict[str, Any], kind: str) -> Any:
    return DESERIALIZER.deserialize(json.dumps(data, default=str), kind, "application/json")


def pod_json(name: str, state: dict[str, Any], *, ready: bool, restarts: int) -> Any:
    return model(
        {
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": "lab"}]},
            "status": {
                "phase": "Running" if "running" in state else "Pending",
                "conditions": [{"type": "Ready", "status": str(ready)}],
                "containerStatuses": [
                    {
                        "name": "app",
                        "image": "lab",
                        "imageID": "",
                        "ready": ready,
                        "restartCount": restarts,
                        "state": state,
                    }
                ],
            },
        },
        "V1Pod",
    )


def unhealthy(pod: str, seconds: float, probe: str, count: int) -> Any:
    return model(
        {
            "metadata": {"name": f"{pod}.{probe}", "uid": f"{pod}-{probe}"},
            "involvedObject": {"kind": "Pod", "name": pod},
            "type": "Warning",
            "reason": "Unhealthy",
            "message": f"{probe} probe failed: HTTP probe failed with statuscode: 404",
            "count": count,
            "lastTimestamp": at(seconds).isoformat(),
        },
        "CoreV1Event",
    )


def crash_loop_and_healthy() -> Timeline:
    """fastapi-bad: liveness fails every 5 s, restarts, then backs off; fastapi-good: Ready."""
    timeline = Timeline()
    running = {"running": {"startedAt": at(2).isoformat()}}
    for name, seconds, state, ready, restarts in [
        ("fastapi-bad", 0, {"waiting": {"reason": "ContainerCreating"}}, False, 0),
        ("fastapi-good", 0, {"waiting": {"reason": "ContainerCreating"}}, False, 0),
        ("fastapi-bad", 2, running, True, 0),
        ("fastapi-good", 2, running, False, 0),
        ("fastapi-good", 6, running, True, 0),
        ("fastapi-bad", 14, running, True, 1),
        ("fastapi-bad", 26, running, True, 2),
        ("fastapi-bad", 38, {"waiting": {"reason": "CrashLoopBackOff"}}, False, 2),
    ]:
        timeline.add_pod(pod_json(name, state, ready=ready, restarts=restarts), at=at(seconds))
    for count, seconds in enumerate((8, 13, 20, 25, 32, 37), start=1):
        timeline.add_event(unhealthy("fastapi-bad", seconds, "Liveness", count))
    timeline.add_event(unhealthy("fastapi-good", 4, "Readiness", 1))
    return timeline


def colours(path: Path) -> set[tuple[int, int, int]]:
    with Image.open(path) as image:
        found = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
    return {(c[0], c[1], c[2]) for _, c in found if isinstance(c, tuple)}


def assert_valid_png(path: Path, *, lanes: int) -> None:
    """A PNG that decodes, 1100 px wide, as tall as its lanes need and no more."""
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
    assert width == 1100
    assert 150 + 60 * lanes <= height <= 320 + 90 * lanes, (width, height)


def test_picture_shows_bands_restarts_and_failed_probes(tmp_path: Path) -> None:
    path = draw(
        crash_loop_and_healthy(), tmp_path / "pods.png", scenario="bad-liveness", end=at(45)
    )
    assert_valid_png(path, lanes=2)
    seen = colours(path)
    for band in (READY, CRASH_LOOP, STARTING, NOT_READY):
        assert ImageColor.getrgb(band.colour) in seen, band.label
    assert ImageColor.getrgb("#b00020") in seen, "no liveness failure marker"


# --- the picture in the student's language ---

HANGUL = re.compile("[\uac00-\ud7a3]")


def texts(figure: Figure) -> list[Text]:
    """Every text the picture shows: title, labels, ticks, annotations, legend."""
    figure.canvas.draw()  # tick labels exist once the figure is laid out
    return [t for t in figure.findobj(Text) if t.get_visible() and t.get_text().strip()]


@pytest.fixture
def said(progress_lines: io.StringIO) -> Iterator[io.StringIO]:
    """What probelab says while the test runs, its say-once memory cleared."""
    picture._say_english_once.cache_clear()
    yield progress_lines
    picture._say_english_once.cache_clear()


def test_a_korean_picture_draws_every_letter_with_a_font_that_has_it() -> None:
    font = picture.hangul_font()
    assert font == "NanumGothic", "koreanize-matplotlib's NanumGothic did not load"
    figure = picture.render(
        crash_loop_and_healthy(), scenario="bad-liveness", end=at(45), language="ko"
    )
    shown = texts(figure)
    korean = [t for t in shown if HANGUL.search(t.get_text())]
    words = {t.get_text() for t in korean}
    assert "bad-liveness: 시간에 따른 Pod" in words
    assert "재시작" in words and "liveness 프로브 실패" in words, words
    for text in shown:
        drawn_with = font_manager.findfont(text.get_fontproperties(), fallback_to_default=False)
        assert picture.has_glyphs(drawn_with, text.get_text().replace("\n", "")), (
            f"{text.get_text()!r} drawn with {drawn_with}, which lacks some of its glyphs"
        )
    families = {
        font_manager.get_font(font_manager.findfont(t.get_fontproperties())).family_name
        for t in korean
    }
    assert families == {font}


def test_without_a_hangul_font_the_picture_is_english_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, said: io.StringIO
) -> None:
    monkeypatch.setattr(picture, "hangul_font", lambda: None)
    for _ in range(2):
        figure = picture.render(
            crash_loop_and_healthy(), scenario="bad-liveness", end=at(45), language="ko"
        )
    shown = [t.get_text() for t in texts(figure)]
    assert not [t for t in shown if HANGUL.search(t)], shown
    assert "bad-liveness: pods over time" in shown and "restart" in shown, shown
    lines = said.getvalue().splitlines()
    assert len(lines) == 1 and "koreanize-matplotlib" in lines[0], lines


def test_fonts_without_hangul_are_not_taken_for_one() -> None:
    dejavu = font_manager.findfont("DejaVu Sans", fallback_to_default=False)
    assert picture.has_glyphs(dejavu, "Ready")
    assert not picture.has_glyphs(dejavu)


def test_picture_of_a_scenario_without_pods(tmp_path: Path) -> None:
    path = draw(Timeline(), tmp_path / "empty.png", scenario="nothing", end=at(1))
    assert_valid_png(path, lanes=0)


@pytest.mark.parametrize(
    ("state", "ready", "band"),
    [
        ({"waiting": {"reason": "ContainerCreating"}}, False, STARTING),
        ({"running": {}}, False, NOT_READY),
        ({"running": {}}, True, READY),
        ({"waiting": {"reason": "CrashLoopBackOff"}}, False, CRASH_LOOP),
    ],
)
def test_band_follows_the_status_column(state: dict[str, Any], ready: bool, band: Any) -> None:
    observation = Timeline().add_pod(pod_json("p", state, ready=ready, restarts=0), at=at(0))
    assert band_of(observation) == band


@pytest.fixture
def registered_secret() -> Iterator[str]:
    SECRETS.register(SECRET)
    yield SECRET


def _record(name: str, logs: dict[str, str]) -> ScenarioRecord:
    return ScenarioRecord(name, f"probelab-{name}-1a2b3c", crash_loop_and_healthy(), logs, at(45))


def test_every_scenario_gets_a_page_a_picture_and_a_row(
    tmp_path: Path, registered_secret: str
) -> None:
    logs = {"fastapi-bad": f"INFO: Shutting down <now>\npassword={registered_secret}\n"}
    records = [_record("bad-liveness", logs), _record("good-liveness", {})]
    results = {
        "bad-liveness": [Outcome("labs/test_02.py::test_restarts", "passed")],
        "good-liveness": [Outcome("labs/test_03.py::test_ready", "failed")],
    }
    written = write_run(tmp_path / "reports", records, results)

    names = {p.name for p in written}
    for stem in ("bad-liveness", "good-liveness"):
        assert {f"{stem}.md", f"{stem}.html", f"{stem}.png"} <= names
        assert_valid_png(tmp_path / "reports" / f"{stem}.png", lanes=2)
    index = (tmp_path / "reports" / "index.md").read_text()
    assert "[bad-liveness](bad-liveness.md)" in index
    assert "![good-liveness: pods over time](good-liveness.png)" in index
    assert "tests: 1 failed, 1 passed" in index
    assert 'href="good-liveness.html"' in (tmp_path / "reports" / "index.html").read_text()

    page = (tmp_path / "reports" / "bad-liveness.md").read_text()
    assert "Tests: 1 passed." in page
    assert "| passed | labs/test_02.py::test_restarts |" in page
    assert "fastapi-bad    0/1     CrashLoopBackOff    2          38s" in page  # `get pod -w`
    assert "## kubectl logs fastapi-bad --previous" in page
    html = (tmp_path / "reports" / "bad-liveness.html").read_text()
    assert "Shutting down &lt;now&gt;" in html
    for text in (page, html):
        assert registered_secret not in text and "password=***" in text


def test_code_fence_outgrows_backticks_in_the_text() -> None:
    text = to_markdown("t", [CodeBlock("a ``` b")])
    assert "````text\na ``` b\n````" in text


def _report(nodeid: str, when: str, outcome: str) -> pytest.TestReport:
    return pytest.TestReport(nodeid, ("f.py", 1, "t"), {}, outcome, None, when)  # type: ignore[arg-type]


def test_outcomes_per_scenario() -> None:
    reports = [
        _report("a::ok", "setup", "passed"),
        _report("a::ok", "call", "passed"),
        _report("a::ok", "teardown", "passed"),
        _report("a::bad", "call", "failed"),
        _report("b::broken_fixture", "setup", "failed"),
        _report("b::skipped", "setup", "skipped"),
        _report("c::not_a_scenario", "call", "passed"),
    ]
    scenario_of = {"a::ok": "a", "a::bad": "a", "b::broken_fixture": "b", "b::skipped": "b"}
    assert outcomes(reports, scenario_of) == {
        "a": [Outcome("a::ok", "passed"), Outcome("a::bad", "failed")],
        "b": [Outcome("b::broken_fixture", "error"), Outcome("b::skipped", "skipped")],
    }
