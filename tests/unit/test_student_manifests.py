"""A student's own manifests (`--manifests DIR`): found by file name with the shipped ones
as fallback, their own image name taken as the lab's, and a failure's hint."""

from pathlib import Path

import pytest

from probelab import i18n
from probelab.manifests import find_manifest, load_manifest
from probelab.model.lab_app import is_lab_image
from probelab.student_manifests import hint

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "manifests"
GOOD = "fastapi-liveness-good.yaml"


def test_the_students_copy_wins_and_missing_ones_fall_back(tmp_path: Path) -> None:
    (tmp_path / GOOD).write_text((SHIPPED / GOOD).read_text())
    assert find_manifest(GOOD, SHIPPED, tmp_path) == tmp_path / GOOD
    assert find_manifest("fastapi-svc.yaml", SHIPPED, tmp_path) == SHIPPED / "fastapi-svc.yaml"
    assert find_manifest(GOOD, SHIPPED) == SHIPPED / GOOD


@pytest.mark.parametrize(
    ("image", "lab"),
    [
        ("YOUR_REGISTRY/fastapi-health:latest", True),
        ("123456789012.dkr.ecr.ap-northeast-2.amazonaws.com/fastapi-health:latest", True),
        ("localhost:5000/fastapi-health", True),
        ("123456789012.dkr.ecr.ap-northeast-2.amazonaws.com/other-app:latest", False),
        ("busybox:1.36", False),
    ],
)
def test_a_students_push_of_the_app_is_the_lab_image(image: str, lab: bool) -> None:
    assert is_lab_image(image) is lab


def test_a_students_ecr_image_is_replaced_by_the_pushed_one(tmp_path: Path) -> None:
    text = (
        (SHIPPED / GOOD)
        .read_text()
        .replace(
            "YOUR_REGISTRY/fastapi-health:latest",
            "123456789012.dkr.ecr.ap-northeast-2.amazonaws.com/fastapi-health:latest",
        )
    )
    (tmp_path / GOOD).write_text(text)
    (pod,) = load_manifest(tmp_path / GOOD, image="127.0.0.1:5443/lab:abc", namespace="n")
    assert pod["spec"]["containers"][0]["image"] == "127.0.0.1:5443/lab:abc"


@pytest.fixture
def wrong_port(tmp_path: Path) -> Path:
    """The good pod as a student might copy it: liveness on the wrong port."""
    text = (SHIPPED / GOOD).read_text()
    assert "port: 8080" in text
    (tmp_path / GOOD).write_text(text.replace("port: 8080", "port: 8000", 1))
    return tmp_path


def test_the_hint_names_the_file_lints_it_and_shows_the_difference(wrong_port: Path) -> None:
    text = hint([GOOD], wrong_port, SHIPPED)
    assert f"This scenario ran your own {GOOD} from {wrong_port}" in text
    assert f"`probelab lint {GOOD}` finds:" in text
    findings = text.split("finds:")[1].split("\n\n")[0]
    assert "livenessProbe.httpGet.port: 8000 is not a containerPort (8080)" in findings
    assert f"--- shipped/{GOOD}\n+++ yours/{GOOD}\n" in text
    assert "\n-          port: 8080\n+          port: 8000\n" in text


def test_the_hint_is_in_the_students_language(wrong_port: Path) -> None:
    try:
        i18n.set_language("ko")
        text = hint([GOOD], wrong_port, SHIPPED)
    finally:
        i18n.set_language(None)
    assert "This scenario" not in text
    assert GOOD in text


USES_GOOD = f"""
import pytest

@pytest.mark.scenario("good", "{GOOD}")
def test_good(lab):
    pass
"""


def test_a_manifests_dir_that_does_not_exist_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_good=USES_GOOD)
    result = pytester.runpytest_subprocess(
        f"--manifests-dir={SHIPPED}", "--manifests=nowhere", "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--manifests nowhere: no such directory*"])


def test_a_manifests_dir_with_none_of_the_labs_files_is_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_good=USES_GOOD)
    (pytester.path / "mine").mkdir()
    (pytester.path / "mine" / "pod.yaml").write_text("kind: Pod\n")
    result = pytester.runpytest_subprocess(
        f"--manifests-dir={SHIPPED}", "--manifests=mine", "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--manifests mine holds none of the lab's manifests ({GOOD})*"])
