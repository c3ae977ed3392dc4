"""How close `probelab predict` comes to what kubelet does: predict and observe each case.

    sudo .venv/bin/python benchmarks/predict_accuracy.py [--parallel 2]
        [--kubernetes-version 1.34] [CASE ...]

Each manifest in benchmarks/manifests runs on the local cluster (which must be up) for
just long enough to show its behaviour, two at a time. For every restart, the first
CrashLoopBackOff, the first Ready and the first not-ready after it, the table gives the
predicted and observed seconds since the first container start and the error. The goal:
median |error| <= 1 s, max <= 3 s, equal restart counts. Prints Markdown.
"""

import argparse
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from probelab import kube
from probelab.clusters.local import releases
from probelab.clusters.local.cluster import LocalCluster
from probelab.errors import ProbelabError
from probelab.images import build_and_push, docker_client
from probelab.model.probes import container_probes
from probelab.model.schema import ContainerTimeline, Timelines
from probelab.observe import observe
from probelab.predict import predict, read_pods

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "benchmarks" / "manifests"
# Seconds to watch each case: its behaviour, with no predicted restart near the end.
DURATIONS = {
    "wrong-port": 75,
    "wrong-path": 55,
    "slow-start": 55,
    "slow-start-startup-probe": 35,
    "startup-too-short": 55,
    "health-fails-later": 80,
    "exec-probe": 55,
    "tcp-probe": 45,
    "ignores-sigterm": 45,
    "readiness-only": 25,
    "slow-health": 55,
    "dependency-in-liveness": 45,
}


@dataclass(frozen=True)
class Point:
    case: str
    what: str
    predicted: float | None
    observed: float | None

    @property
    def error(self) -> float | None:
        if self.predicted is None or self.observed is None:
            return None
        return abs(self.predicted - self.observed)


def _unready(timeline: ContainerTimeline) -> float | None:
    """The first not-ready after the first Ready."""
    if timeline.ready_at is None:
        return None
    ready_at = timeline.ready_at
    return next((e.at for e in timeline.events if e.kind == "not-ready" and e.at > ready_at), None)


def points(case: str, predicted: Timelines, observed: Timelines, probed: set[str]) -> list[Point]:
    """Matched times; Ready only for containers whose readiness a probe decides (in
    ``probed``): otherwise Ready is just the start as kubelet published it."""
    result = []
    for p_pod, o_pod in zip(predicted.pods, observed.pods, strict=True):
        for p, o in zip(p_pod.containers, o_pod.containers, strict=True):
            for n in range(max(len(p.restarts_at), len(o.restarts_at))):
                result.append(
                    Point(case, f"restart {n + 1}", _at(p.restarts_at, n), _at(o.restarts_at, n))
                )
            pairs = {
                "CrashLoopBackOff": (p.crash_loop_back_off_at, o.crash_loop_back_off_at),
                "Ready": (p.ready_at, o.ready_at),
                "not ready": (_unready(p), _unready(o)),
            }
            if p.name not in probed:
                del pairs["Ready"]
            for what, (p_at, o_at) in pairs.items():
                if p_at is not None or o_at is not None:
                    result.append(Point(case, what, p_at, o_at))
    return result


def _at(values: list[float], n: int) -> float | None:
    return values[n] if n < len(values) else None


def _text(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", default=list(DURATIONS))
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument(
        "--kubernetes-version",
        metavar="VERSION",
        help="run on this local cluster version (as `probelab cluster up --kubernetes-version`"
        ": another than the running one replaces it); default: the running cluster",
    )
    args = parser.parse_args()
    local = LocalCluster()
    try:
        request = releases.requested(args.kubernetes_version)
        if request is not None:
            local.up(request)
    except ProbelabError as error:
        print(f"predict_accuracy: {error}", file=sys.stderr)
        return error.exit_code
    if not local.is_up():
        print("the local cluster is not up: probelab cluster up", file=sys.stderr)
        return 2
    handle = local.handle(owned=False)
    assert handle.registry is not None
    image = build_and_push(docker_client(handle.docker_host), ROOT / "app", handle.registry)
    api = kube.api_client(handle.kubeconfig, handle.context)
    print(f"server: Kubernetes {kube.check_reachable(api)}\n")

    def run(case: str) -> list[Point]:
        path, duration = MANIFESTS / f"{case}.yaml", DURATIONS[case]
        seen = observe(
            api,
            path,
            duration=duration,
            image=image,
            registry=handle.registry,  # type: ignore[arg-type]
            namespace_prefix="probelab-accuracy",
        )
        probed = {
            str(c.get("name"))
            for pod in read_pods(path)
            for c in pod.spec["containers"]
            if {"readiness", "startup"} & set(container_probes(c))
        }
        return points(case, predict(path, duration=duration), seen, probed)

    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        results = dict(zip(args.cases, pool.map(run, args.cases), strict=True))

    print("| case | what | predicted s | observed s | error s |\n|---|---|---|---|---|")
    errors: list[float] = []
    count_mismatches = []
    for case, case_points in results.items():
        restarts = [p for p in case_points if p.what.startswith("restart")]
        if any(p.predicted is None or p.observed is None for p in restarts):
            count_mismatches.append(case)
        for p in case_points:
            miss = p.error
            if miss is not None:
                errors.append(miss)
            print(
                f"| {case} | {p.what} | {_text(p.predicted)} | {_text(p.observed)} "
                f"| {_text(miss) if miss is not None else 'unmatched'} |"
            )
    print("\n| case | restarts predicted / observed | median error s | max error s |")
    print("|---|---|---|---|")
    for case, case_points in results.items():
        restarts = [p for p in case_points if p.what.startswith("restart")]
        predicted = sum(p.predicted is not None for p in restarts)
        observed = sum(p.observed is not None for p in restarts)
        case_errors = [p.error for p in case_points if p.error is not None]
        median = statistics.median(case_errors) if case_errors else None
        print(
            f"| {case} | {predicted} / {observed} | {_text(median)} "
            f"| {_text(max(case_errors, default=None))} |"
        )
    print(
        f"\noverall: {len(errors)} matched times, median |error| "
        f"{statistics.median(errors):.2f} s, max {max(errors):.2f} s; restart counts differ "
        f"in {len(count_mismatches)} of {len(results)} cases"
        + (f" ({', '.join(count_mismatches)})" if count_mismatches else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
