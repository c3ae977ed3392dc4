"""The conformance runner's pure parts: image names, ginkgo's command line, its report."""

import json
from pathlib import Path
from typing import Any

import pytest

from probelab.clusters.local.build import SuiteBinaries
from probelab.conformance import summary
from probelab.conformance.images import upstream_references
from probelab.conformance.results import read_ginkgo_report, summary_line
from probelab.conformance.suite import FOCUS, SuiteOutcome, SuiteRun
from probelab.errors import ProbelabError

# The shape of test/utils/image/manifest.go in v1.35 (values as released).
MANIFEST_GO = """
	initRegistry = RegistryList{
		PromoterE2eRegistry:      "registry.k8s.io/e2e-test-images",
		GcRegistry:               "registry.k8s.io",
		PrivateRegistry:          "gcr.io/k8s-authenticated-test",
	}
	configs[AgnhostPrev] = Config{list.PromoterE2eRegistry, "agnhost", "2.55"}
	configs[Agnhost] = Config{list.PromoterE2eRegistry, "agnhost", "2.59"}
	configs[AgnhostPrivate] = Config{list.PrivateRegistry, "agnhost", "2.6"}
	configs[BusyBox] = Config{list.PromoterE2eRegistry, "busybox", "1.37.0-1"}
	configs[Pause] = Config{list.GcRegistry, "pause", "3.10.1"}
"""


def test_image_names_are_upstreams_own() -> None:
    images = upstream_references(MANIFEST_GO)
    assert images.all() == (
        "registry.k8s.io/e2e-test-images/agnhost:2.59",
        "registry.k8s.io/e2e-test-images/busybox:1.37.0-1",
        "registry.k8s.io/pause:3.10.1",
    )


def test_image_names_follow_a_bumped_tag() -> None:
    bumped = MANIFEST_GO.replace('"agnhost", "2.59"', '"agnhost", "2.61"')
    assert upstream_references(bumped).agnhost.endswith("/agnhost:2.61")


def test_a_manifest_without_an_image_is_refused() -> None:
    without = MANIFEST_GO.replace("configs[BusyBox]", "configs[Other]")
    with pytest.raises(ProbelabError, match="no BusyBox image"):
        upstream_references(without)


def _binaries(tmp_path: Path) -> SuiteBinaries:
    return SuiteBinaries(tmp_path / "e2e.test", tmp_path / "ginkgo", tmp_path / "agnhost", tmp_path)


def test_ginkgo_runs_the_binary_with_both_probe_blocks_in_parallel(tmp_path: Path) -> None:
    run = SuiteRun(_binaries(tmp_path), tmp_path / "kubeconfig", "probelab-local", tmp_path)
    argv = run.argv()
    assert argv[0] == str(tmp_path / "ginkgo")
    assert "--procs=2" in argv
    assert [a for a in argv if a.startswith("--focus=")] == [f"--focus={p}" for p in FOCUS]
    split = argv.index("--")
    assert argv[split - 1] == str(tmp_path / "e2e.test")
    suite_flags = argv[split + 1 :]
    assert f"--kubeconfig={tmp_path / 'kubeconfig'}" in suite_flags
    assert "--context=probelab-local" in suite_flags
    assert f"--report-dir={tmp_path}" in suite_flags


def _spec(leaf: str, state: str, **extra: Any) -> dict[str, Any]:
    return {
        "ContainerHierarchyTexts": ["[sig-node] Probing container"],
        "ContainerHierarchyLabels": [["sig-node"], None],
        "LeafNodeType": "It",
        "LeafNodeText": f"{leaf} [NodeConformance]",
        "LeafNodeLabels": ["NodeConformance"],
        "State": state,
        "RunTime": 61_500_000_000,
        **extra,
    }


def _report(tmp_path: Path, *specs: dict[str, Any]) -> Path:
    setup = {"LeafNodeType": "SynchronizedBeforeSuite", "State": "passed"}
    path = tmp_path / "report.json"
    path.write_text(json.dumps([{"SpecReports": [setup, *specs]}]))
    return path


def test_report_gives_each_spec_its_outcome_time_and_reason(tmp_path: Path) -> None:
    path = _report(
        tmp_path,
        _spec("should be restarted with a /healthz http liveness probe", "passed"),
        _spec(
            "should have monotonically increasing restart count",
            "failed",
            Failure={
                "Message": "pod container-probe-x1y2z/liveness-1 - expected 5\nmore\nand\nmore"
            },
        ),
        _spec("should be restarted startup probe fails", "timedout"),
    )
    specs = read_ginkgo_report(path)
    assert [s.state for s in specs] == ["passed", "failed", "timedout"]
    assert specs[0].name == (
        "[sig-node] Probing container should be restarted with a /healthz http liveness "
        "probe [NodeConformance]"
    )
    assert specs[0].seconds == pytest.approx(61.5)
    assert specs[1].reason.splitlines() == [
        "pod container-probe-x1y2z/liveness-1 - expected 5",
        "more",
        "and",
    ]
    assert specs[2].reason == "timed out"
    assert specs[1].namespaces(["container-probe-x1y2z", "container-probe-x1y2"]) == [
        "container-probe-x1y2z"
    ]
    assert summary_line(specs) == "1/3 specs passed, 0 skipped"


def test_report_keeps_only_the_focused_specs(tmp_path: Path) -> None:
    path = _report(tmp_path, _spec("in focus", "passed"), _spec("elsewhere", "skipped"))
    specs = read_ginkgo_report(path, [r"Probing container in focus"])
    assert [spec.name for spec in specs] == [
        "[sig-node] Probing container in focus [NodeConformance]"
    ]


def test_summary_names_every_spec_that_did_not_pass_and_a_missing_image(tmp_path: Path) -> None:
    specs = read_ginkgo_report(
        _report(
            tmp_path,
            _spec("passes", "passed"),
            _spec("hangs", "timedout"),
        )
    )
    failures = {"registry.k8s.io/e2e-test-images/agnhost:2.59": "ns/pod: ErrImagePull: "}
    outcome = SuiteOutcome(specs, 10.0, 1, tmp_path / "junit_01.xml", {}, failures, ["ns"], [])
    text = summary.render(outcome)
    assert "TIMEDOUT: [sig-node] Probing container hangs [NodeConformance]: timed out" in text
    assert "image registry.k8s.io/e2e-test-images/agnhost:2.59 could not be pulled" in text
    assert "passes" not in text
    assert not summary.succeeded(outcome)
    outcome.specs = specs[:1]
    outcome.exit_code = 0
    assert summary.succeeded(outcome)
    outcome.specs = []
    assert not summary.succeeded(outcome)
