"""Upstream's probe specs on the local cluster: how many pass, how long, and restarts 3 ways.

    .venv/bin/python benchmarks/upstream_probe_e2e.py [--procs 2] [--timeout 3600]

Runs `[sig-node] Probing container` and `Probing restartable init container` of the
e2e.test built for the running cluster's release (`probelab conformance run` underneath),
then, for every spec, sets three numbers side by side: the restart count upstream's spec
asserts (read from container_probe.go of v1.35, below), the highest restart count our own
pod watch saw, and what `probelab predict` (its CLI, on the pod the spec created, with
agnhost's or busybox's behaviour described by predict's options) says for the spec's
observation window. Raw data goes to benchmarks/data/upstream_probe_e2e/<version>/: upstream's
JUnit (gzip), every spec pod's manifest and results.json. Prints Markdown for
docs/conformance.md. Exits 1 unless every spec passed. `--from-data DIR` runs predict
again on the pods a run recorded (no cluster), for a newer model against the same run.
"""

import argparse
import gzip
import json
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from probelab import kube
from probelab.clusters.local.cluster import LocalCluster
from probelab.conformance import summary
from probelab.conformance.local import run_on_local
from probelab.conformance.results import summary_line
from probelab.conformance.suite import SuiteOutcome
from probelab.signals import interruptible

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data" / "upstream_probe_e2e"
OBSERVATION = 240.0  # defaultObservationTimeout, four minutes

# What each spec asserts about restarts, by its leaf text (the same in both blocks):
# (">=", n) for RunLivenessTest(..., n > 0, ...), ("==", 0) for 0 or an explicit Equal(0),
# None where the spec asserts nothing about restarts.
ASSERTS: dict[str, tuple[str, int] | None] = {
    "with readiness probe should not be ready before initial delay and never restart": ("==", 0),
    "with readiness probe that fails should never be ready and never restart": ("==", 0),
    'should be restarted with a exec "cat /tmp/health" liveness probe': (">=", 1),
    'should *not* be restarted with a exec "cat /tmp/health" liveness probe': ("==", 0),
    "should be restarted with a /healthz http liveness probe": (">=", 1),
    "should *not* be restarted with a tcp:8080 liveness probe": ("==", 0),
    "should have monotonically increasing restart count": (">=", 5),
    "should *not* be restarted with a /healthz http liveness probe": ("==", 0),
    "should be restarted with an exec liveness probe with timeout": (">=", 1),
    "should not be ready with an exec readiness probe timeout": None,
    "should be restarted with a failing exec liveness probe that took longer than the timeout": (
        ">=",
        1,
    ),
    "should be restarted with a local redirect http liveness probe": (">=", 1),
    "should *not* be restarted with a non-local redirect http liveness probe": ("==", 0),
    "should be restarted startup probe fails": (">=", 1),
    "should *not* be restarted by liveness probe because startup probe delays it": ("==", 0),
    "should be restarted by liveness probe after startup probe enables it": (">=", 1),
    "should be ready immediately after startupProbe succeeds": None,
    "should override timeoutGracePeriodSeconds when LivenessProbe field is set": (">=", 1),
    "should override timeoutGracePeriodSeconds when StartupProbe field is set": (">=", 1),
    "should *not* be restarted with a GRPC liveness probe": ("==", 0),
    "should be restarted with a GRPC liveness probe": (">=", 1),
    "should mark readiness on pods to false while pod is in progress of terminating when a "
    "pod has a readiness probe": None,
    "should mark readiness on pods to false and disable liveness probes while pod is in "
    "progress of terminating": None,
}
# The spec's seconds of observation where they are not the default four minutes.
WINDOWS = {
    "should have monotonically increasing restart count": 120 + 240 + 4 * 120.0,
    "should override timeoutGracePeriodSeconds when LivenessProbe field is set": 40 + 240.0,
    "should override timeoutGracePeriodSeconds when StartupProbe field is set": 40 + 240.0,
}
_LIVENESS = ["--listens", "8080", "--health-path", "/healthz", "--fail-after", "10"]
_WEBSERVER = ["--listens", "80", "--serves", "/=200"]
# How the spec's container behaves, in predict's options; a string says why it cannot be.
APPS: dict[str, list[str] | str] = {
    "with readiness probe should not be ready before initial delay and never restart": _WEBSERVER,
    "with readiness probe that fails should never be ready and never restart": _WEBSERVER,
    # The file is gone at 10 s and the first probe comes at 15 s: every probe fails.
    'should be restarted with a exec "cat /tmp/health" liveness probe': ["--exec-fails"],
    'should *not* be restarted with a exec "cat /tmp/health" liveness probe': [],
    "should be restarted with a /healthz http liveness probe": _LIVENESS,
    "should *not* be restarted with a tcp:8080 liveness probe": ["--listens", "8080"],
    "should have monotonically increasing restart count": _LIVENESS,
    "should *not* be restarted with a /healthz http liveness probe": _WEBSERVER,
    # A probe that runs past its timeout counts as failed.
    "should be restarted with an exec liveness probe with timeout": ["--exec-fails"],
    "should not be ready with an exec readiness probe timeout": ["--exec-fails"],
    "should be restarted with a failing exec liveness probe that took longer than the timeout": [
        "--exec-fails"
    ],
    "should be restarted with a local redirect http liveness probe": [
        "--listens",
        "8080",
        "--health-path",
        "/redirect?loc=%2Fhealthz",
        "--fail-after",
        "10",
    ],
    # kubelet counts a redirect off the pod as success.
    "should *not* be restarted with a non-local redirect http liveness probe": [
        "--listens",
        "8080",
        "--serves",
        "/redirect?loc=http%3A%2F%2F0.0.0.0%2F=200",
    ],
    "should be restarted startup probe fails": ["--exec-fails"],
    "should *not* be restarted by liveness probe because startup probe delays it": ["--exec-fails"],
    "should be restarted by liveness probe after startup probe enables it": (
        "its startup probe's file appears later while liveness' never does; predict has one "
        "exec outcome for every probe"
    ),
    "should be ready immediately after startupProbe succeeds": (
        "its startup file appears after a delay; predict has one exec outcome for every probe"
    ),
    # busybox's `sleep` listens on nothing (port 9 stands for that) and, as PID 1 under
    # sh, ignores SIGTERM: the probe-level grace (5 s), not the pod's 500 s, ends it.
    "should override timeoutGracePeriodSeconds when LivenessProbe field is set": [
        "--listens",
        "9",
        "--ignores-sigterm",
    ],
    "should override timeoutGracePeriodSeconds when StartupProbe field is set": [
        "--exec-fails",
        "--ignores-sigterm",
    ],
    "should *not* be restarted with a GRPC liveness probe": ["--listens", "5000"],
    "should be restarted with a GRPC liveness probe": ["--listens", "5000"],
    "should mark readiness on pods to false while pod is in progress of terminating when a "
    "pod has a readiness probe": "the spec deletes its pod; predict does not model deletion",
    "should mark readiness on pods to false and disable liveness probes while pod is in "
    "progress of terminating": "the spec deletes its pod; predict does not model deletion",
}


@dataclass
class Row:
    spec: str
    state: str
    seconds: float
    reason: str
    asserts: str
    observed: int | None
    predicted: int | None
    agrees: bool | None  # the predicted count meets upstream's assertion
    predict_note: str
    namespace: str


def leaf(name: str) -> str:
    """A spec's own text, without its Describe block and labels."""
    for block in ("Probing restartable init container", "Probing container"):
        if block in name:
            text = name.split(block, 1)[1]
            return re.sub(r"(\s*\[[^\]]+\])+$", "", text).strip()
    return name


def meets(leaf_text: str, restarts: int | None) -> bool | None:
    """Whether `restarts` satisfies what the spec asserts (None: nothing to compare)."""
    asserted = ASSERTS.get(leaf_text)
    if asserted is None or restarts is None:
        return None
    op, count = asserted
    return restarts >= count if op == ">=" else restarts == count


def asserted_text(leaf_text: str) -> str:
    asserted = ASSERTS.get(leaf_text)
    return "-" if asserted is None else f"{asserted[0]} {asserted[1]}"


def predicted_restarts(manifest: Path, leaf_text: str) -> tuple[int | None, str]:
    """Restarts `probelab predict` states for the spec's window, or why there is none."""
    app = APPS.get(leaf_text, "no description of this spec's container")
    if isinstance(app, str):
        return None, app
    window = WINDOWS.get(leaf_text, OBSERVATION)
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("probelab")),
            "predict",
            str(manifest),
            "--format",
            "json",
            "--duration",
            f"{window:.0f}",
            *app,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return None, f"predict: {result.stderr.strip()}"
    pods = json.loads(result.stdout)["pods"]
    return sum(c["restarts"] for pod in pods for c in pod["containers"]), " ".join(app)


def rows(outcome: SuiteOutcome, out: Path) -> list[Row]:
    table = []
    for spec in outcome.specs:
        text = leaf(spec.name)
        namespaces = spec.namespaces(outcome.made_namespaces)
        pods = [p for key, p in outcome.pods.items() if key.split("/")[0] in namespaces]
        observed = max((p.total_restarts for p in pods), default=None)
        predicted, note = None, "no pod recorded"
        if pods:
            manifest = out / "pods" / f"{pods[0].namespace}.yaml"
            manifest.parent.mkdir(parents=True, exist_ok=True)
            manifest.write_text(yaml.safe_dump(pods[0].manifest, sort_keys=False))
            predicted, note = predicted_restarts(manifest, text)
        table.append(
            Row(
                spec.name,
                spec.state,
                round(spec.seconds, 1),
                spec.reason,
                asserted_text(text),
                observed,
                predicted,
                meets(text, predicted),
                note,
                ",".join(namespaces),
            )
        )
    return table


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"Kubernetes {results['version']}, ginkgo --procs={results['procs']}: "
        f"{results['summary']}, wall time {results['seconds']:.0f} s",
        "",
        "| spec | result | s | upstream asserts | observed | predicted | meets | predict options |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in results["specs"]:
        block = "init: " if "restartable init" in row["spec"] else ""
        name = block + leaf(row["spec"]).replace("|", "\\|")
        lines.append(
            f"| {name} | {row['state']} | {row['seconds']:.0f} | {row['asserts']} | "
            f"{_dash(row['observed'])} | {_dash(row['predicted'])} | {_yes(row['agrees'])} | "
            f"{row['predict_note']} |"
        )
    return "\n".join(lines)


def repredict(out: Path) -> dict[str, Any]:
    """Run predict again on the recorded pods (a newer model, same observations)."""
    results: dict[str, Any] = json.loads((out / "results.json").read_text())
    for row in results["specs"]:
        text = leaf(row["spec"])
        manifests = [out / "pods" / f"{ns}.yaml" for ns in row["namespace"].split(",") if ns]
        manifest = next((m for m in manifests if m.is_file()), None)
        if manifest is not None:
            row["predicted"], row["predict_note"] = predicted_restarts(manifest, text)
        row["agrees"] = meets(text, row["predicted"])
    return results


def _dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def _yes(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "**no**")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument(
        "--from-data",
        type=Path,
        metavar="DIR",
        help="no cluster: predict again on the pods a run recorded in DIR, and print the table",
    )
    args = parser.parse_args()
    if args.from_data:
        results = repredict(args.from_data)
        (args.from_data / "results.json").write_text(json.dumps(results, indent=2))
        print(markdown(results))
        return 0 if all(row["state"] == "passed" for row in results["specs"]) else 1
    local = LocalCluster()
    api = kube.api_client(local.layout.kubeconfig, local.config.context)
    try:
        version = kube.check_reachable(api)
    finally:
        api.close()
    out = DATA / version
    shutil.rmtree(out, ignore_errors=True)
    outcome = run_on_local(out / "reports", procs=args.procs, timeout=args.timeout)
    results = {
        "version": version,
        "procs": args.procs,
        "seconds": round(outcome.seconds, 1),
        "summary": summary_line(outcome.specs),
        "made_namespaces": outcome.made_namespaces,
        "left_behind": outcome.left_behind,
        "pull_failures": outcome.pull_failures,
        "specs": [asdict(row) for row in rows(outcome, out)],
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    # The reports are 18 MB, nearly all of it e2e.test's 7,300 specs outside the focus:
    # upstream's JUnit stays, compressed; results.json holds each focused spec.
    junit = out / "reports" / "junit_01.xml"
    with junit.open("rb") as source, gzip.open(out / "junit_01.xml.gz", "wb") as packed:
        shutil.copyfileobj(source, packed)
    shutil.rmtree(out / "reports")
    print(markdown(results))
    print()
    print(summary.render(outcome))
    return 0 if summary.succeeded(outcome) else 1


if __name__ == "__main__":
    sys.exit(interruptible(main, "upstream_probe_e2e"))
