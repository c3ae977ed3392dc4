"""The lab's report as a real lab run writes it, checked the way CI keeps it.

A lab run of two scenarios (a healthy pod, and cause B's restarts with previous logs) runs
in its own pytest process against this session's cluster with `--report-dir` and
`--junitxml`, exactly as tox's `labs` environment runs the whole lab. Its report must list
every scenario, give each a Markdown and an HTML page, and a picture that is a valid PNG
of sensible size showing what happened.
"""

import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest
from PIL import Image, ImageColor

from probelab.picture import DPI, PROBE_MARKERS, READY, WIDTH_INCHES
from probelab.plugin import ROOT

LABS = {
    "good-liveness": "labs/test_03_good_liveness.py",
    "cause-b": "labs/test_08_cause_b_wrong_path.py",
}
# The run's own waits are bounded by probe settings; this only stops a hung process.
RUN_LIMIT_SECONDS = 600


def _forwarded_options(config: pytest.Config) -> list[str]:
    """This session's cluster and registry, so the run reuses them and leaves them up."""
    options = [f"--cluster={config.getoption('cluster')}", "--keep-cluster"]
    options.append(f"--registry={config.getoption('registry')}")
    for name in ("kube_context", "kubeconfig"):
        value = config.getoption(name)
        if value is not None:
            options.append(f"--{name.replace('_', '-')}={value}")
    return options


@pytest.fixture(scope="module")
def report_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("lab-report")
    prefix = request.config.getoption("namespace_prefix")
    outputs = [f"--report-dir={directory}", f"--junitxml={directory / 'junit.xml'}"]
    command = [sys.executable, "-m", "pytest", *LABS.values(), "-q", "-p", "no:cacheprovider"]
    command += [*_forwarded_options(request.config), f"--namespace-prefix={prefix}-report"]
    run = subprocess.run(
        command + outputs, cwd=ROOT, capture_output=True, text=True, timeout=RUN_LIMIT_SECONDS
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return directory


def _colours(path: Path) -> set[tuple[int, int, int]]:
    with Image.open(path) as image:
        found = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
    return {(c[0], c[1], c[2]) for _, c in found if isinstance(c, tuple)}


def test_index_lists_every_scenario(report_dir: Path) -> None:
    index = (report_dir / "index.md").read_text()
    page = (report_dir / "index.html").read_text()
    for scenario in LABS:
        assert f"[{scenario}]({scenario}.md)" in index
        assert f'href="{scenario}.html"' in page
    assert f"{len(LABS)} scenarios" in index
    assert "failed" not in index


def test_each_scenario_page_holds_tests_timeline_and_picture(report_dir: Path) -> None:
    junit = ElementTree.parse(report_dir / "junit.xml").getroot()
    for scenario, lab_file in LABS.items():
        module = lab_file.removesuffix(".py").replace("/", ".")
        tests = sum(case.get("classname") == module for case in junit.iter("testcase"))
        markdown = (report_dir / f"{scenario}.md").read_text()
        assert tests > 0 and markdown.count("| passed |") == tests
        assert f"![{scenario}: pods over time]({scenario}.png)" in markdown
        assert "NAME" in markdown and "REASON" in markdown  # the get -w and event tables
        assert "<pre>" in (report_dir / f"{scenario}.html").read_text()
    page = (report_dir / "cause-b.md").read_text()
    assert "## kubectl logs fastapi-b-notfound --previous" in page
    assert "statuscode: 404" in page


@pytest.mark.parametrize(("scenario", "lanes"), [("good-liveness", 1), ("cause-b", 3)])
def test_each_picture_is_a_valid_png_of_sensible_size(
    report_dir: Path, scenario: str, lanes: int
) -> None:
    path = report_dir / f"{scenario}.png"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
    assert width == WIDTH_INCHES * DPI
    assert 150 + 60 * lanes <= height <= 320 + 90 * lanes, (width, height)
    assert 10_000 < path.stat().st_size < 500_000
    seen = _colours(path)
    assert ImageColor.getrgb(READY.colour) in seen
    if scenario == "cause-b":
        assert ImageColor.getrgb(PROBE_MARKERS["Liveness"][1]) in seen, (
            "no failed liveness probe drawn"
        )
