"""Measure the node latencies the kubelet model uses, from containerd's log and the API.

    sudo .venv/bin/python benchmarks/calibrate_node.py [--runs 3] [--seconds 40]

On the local cluster (which must be up) it runs benchmarks/calibration/*.yaml for
``--seconds`` each time and measures, per run:

* ``sandbox``: kubelet asks for the pod's sandbox -> the first container runs
  (containerd's ``RunPodSandbox`` to ``StartContainer ... returns``);
* ``app_stop``: a graceful stop of the lab app (``StopContainer`` asked -> returned);
* ``create``: the first stop returned -> the next attempt runs (later ones may back off);
* ``notice``: a container runs (containerd) -> the API shows it running (watch);
* ``app_boot`` / ``app_reboot``: a container runs -> uvicorn says it listens, for a first
  and a restarted instance (container logs with timestamps);
* ``first_probe`` / ``follow_up``: a container runs -> kubelet's first readiness run, and
  that run -> the second one, both triggered by pod syncs (kubelet's "Probe failed" lines of
  never-ready pods, whose ticker runs only a minute later). Up to 1.35 they are the model's
  ``notice`` and ``follow_up``; from 1.36, with its on-demand relist, ``relisted`` and
  ``relist_wait``. A start with no triggered run is counted, not measured.

kubelet's probe workers sleep a random part of their period before their first run when
kubelet itself started less than a period before (``prober/worker.go``), which would hide
the triggered runs; so the script first waits until kubelet has run for the longest period
of the calibration pods (a minute). From 1.36 ``notice`` (a start seen in the API) is the
model's ``relisted`` too: the on-demand relist shows a start at once.

Raw samples go to benchmarks/data/node-latencies-<time>.json with each latency's min,
mean and max and the model's nominal value and range (probelab/model/node.py). Exit 1
when a measured mean lies outside the model's range: the model would then sample a node
unlike this one.

    --kubernetes-version 1.36   first (re)starts the local cluster on that version
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

from kubernetes import client

from probelab import kube
from probelab.clusters.local.cluster import LocalCluster
from probelab.clusters.local.kubelet_log import ProbeFailure, read_probe_failures
from probelab.clusters.local.processes import seconds_since_start
from probelab.clusters.local.releases import parse
from probelab.clusters.local.runtime_log import PodRuntime, read_runtime_log, rfc3339_seconds
from probelab.errors import ProbelabError
from probelab.lab import Lab, Scenario, namespace_name
from probelab.local_target import local_target
from probelab.model.node import Node
from probelab.model.pods import PodUnderTest
from probelab.model.probes import ProbeSettings, container_probes
from probelab.model.rules import Kubelet
from probelab.observe import pod_object
from probelab.predict import read_pods
from probelab.registries.base import Registry
from probelab.runs import RunLease
from probelab.signals import interruptible
from probelab.timeline import PodObservation, Timeline

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "benchmarks" / "calibration"
DATA = ROOT / "benchmarks" / "data"
LISTENING = "Uvicorn running on"
TRIGGERED = 5.0
"""A readiness run this soon after a start came from a pod sync: the never-ready pods'
ticker comes a minute (their period) later."""
MODEL_NAMES = {"first_probe": "notice", "follow_up": "follow_up"}
ON_DEMAND_NAMES = {"first_probe": "relisted", "follow_up": "relist_wait", "notice": "relisted"}
"""What the model calls the measured latencies, up to 1.35 and from 1.36 (on-demand relist)."""


def _log_time(line: str) -> float | None:
    try:
        return rfc3339_seconds(line.split(" ", 1)[0])
    except ValueError:
        return None


def _boots(lab: Lab, pod: str, starts: list[float]) -> dict[str, list[float]]:
    """Start -> listening, for the current and the previous instance; each log is matched
    to the start just before its first line, so a restart in between cannot mix them up."""
    found: dict[str, list[float]] = defaultdict(list)
    for previous in (False, True):
        logs = kube.pod_logs(lab.api, lab.namespace, pod, previous=previous, timestamps=True)
        times = [(_log_time(line), line) for line in logs.splitlines()]
        first = next((at for at, _ in times if at is not None), None)
        listening = next((at for at, line in times if at is not None and LISTENING in line), None)
        before = [start for start in starts if first is not None and start <= first]
        if listening is not None and before:
            kind = "app_boot" if before[-1] == starts[0] else "app_reboot"
            found[kind].append(listening - before[-1])
    return found


def _notices(timeline: Timeline, pod: str, starts: list[float]) -> list[float]:
    """containerd's start -> the first watch event showing that many restarts, running."""
    found = []
    observations = timeline.pods(pod)
    for count, start in enumerate(starts):
        seen = next(
            (o for o in observations if o.restarts == count and _running(o)),
            None,
        )
        if seen is not None:
            found.append(seen.at.timestamp() - start)
    return found


def _running(observation: PodObservation) -> bool:
    return any(c.state == "running" for c in observation.containers)


def _triggered(starts: list[float], runs: list[float]) -> dict[str, list[float]]:
    """first_probe and follow_up of each start, from the readiness runs of its container;
    a start with no run soon after it counts under ``unprobed`` (one sample per start)."""
    found: dict[str, list[float]] = defaultdict(list)
    for start in starts:
        soon = [at - start for at in runs if 0 <= at - start <= TRIGGERED]
        if not soon:
            found["unprobed"].append(1.0)
            continue
        found["first_probe"].append(soon[0])
        if len(soon) > 1:
            found["follow_up"].append(soon[1] - soon[0])
    return found


def measure(runtime: PodRuntime, lab: Lab, failures: list[ProbeFailure]) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = defaultdict(list)
    attempts = sorted(runtime.attempts, key=lambda a: a.attempt)
    starts = [a.started for a in attempts if a.started is not None]
    if runtime.sandbox_asked is not None and starts:
        samples["sandbox"].append(starts[0] - runtime.sandbox_asked)
    for attempt, following in pairwise(attempts):
        if attempt.stop_asked is not None and attempt.stopped is not None:
            samples["app_stop"].append(attempt.stopped - attempt.stop_asked)
        # Only the first restart follows its stop at once; later ones may wait a back-off.
        if attempt.attempt == 0 and attempt.stopped is not None and following.started is not None:
            samples["create"].append(following.started - attempt.stopped)
    samples["notice"] += _notices(lab.timeline, runtime.pod, starts)
    for name, values in _boots(lab, runtime.pod, starts).items():
        samples[name] += values
    runs = [f.at for f in failures if f.pod == runtime.pod and f.kind == "readiness"]
    if runtime.pod.startswith("calibrate-never-ready"):
        for name, values in _triggered(starts, runs).items():
            samples[name] += values
    return samples


def calibration_pods() -> list[PodUnderTest]:
    return [pod for path in sorted(CASES.glob("*.yaml")) for pod in read_pods(path)]


def wait_out_worker_jitter(cluster: LocalCluster) -> None:
    """Until kubelet has run for the pods' longest probe period (see the module's doc)."""
    longest = max(
        ProbeSettings.of(probe).period
        for pod in calibration_pods()
        for container in pod.spec["containers"]
        for probe in container_probes(container).values()
    )
    record = cluster.supervisor.record("kubelet")
    if record is None:
        raise ProbelabError("the local cluster's kubelet is not running")
    left = longest - seconds_since_start(record)
    if left > 0:
        print(f"kubelet started {longest - left:.0f}s ago: waiting {left:.0f}s, past its probe "
              "workers' start-up jitter", file=sys.stderr)  # fmt: skip
        time.sleep(left)


def one_run(
    api: client.ApiClient, image: str, registry: Registry, cluster: LocalCluster, seconds: float
) -> dict[str, list[float]]:
    pods = calibration_pods()
    samples: dict[str, list[float]] = defaultdict(list)
    with RunLease(api) as lease:
        lab = Lab(
            api,
            Scenario("calibrate", ()),
            namespace=namespace_name("probelab-calibrate", "node"),
            run_id=lease.run_id,
            image=image,
            registry=registry,
            manifests_dir=CASES,
        )
        try:
            lab.start()
            kube.apply(lab.api, [pod_object(pod, lab.namespace, image) for pod in pods])
            lab.assert_never(
                pods[0].name,
                lambda t: next((o for o in t.pods() if o.deleted), None),
                budget=seconds,
                what="a calibration pod deleted while measuring",
            )
            year = datetime.now().year  # klog's lines leave it out
            failures = read_probe_failures(cluster.kubelet_log, lab.namespace, year=year)
            for pod_runtime in read_runtime_log(cluster.runtime_log, lab.namespace).values():
                for name, values in measure(pod_runtime, lab, failures).items():
                    samples[name] += values
        finally:
            lab.close()
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--kubernetes-version", help="(re)start the local cluster on this first")
    args = parser.parse_args()
    if not 1 <= args.runs <= 20 or not 10 <= args.seconds <= 600:
        print("calibrate_node: --runs must be 1-20 and --seconds 10-600", file=sys.stderr)
        return 2
    try:
        if args.kubernetes_version:
            LocalCluster().up(parse(args.kubernetes_version))
        target = local_target(ROOT / "app")
        kubelet = Kubelet.parse(kube.kubelet_version(target.api))
        wait_out_worker_jitter(target.cluster)
    except ProbelabError as error:
        print(f"calibrate_node: {error}", file=sys.stderr)
        return error.exit_code
    runs = [
        one_run(target.api, target.image, target.registry, target.cluster, args.seconds)
        for _ in range(args.runs)
    ]
    names = ON_DEMAND_NAMES if kubelet.relists_on_demand else MODEL_NAMES
    unprobed = sum(len(run.pop("unprobed", [])) for run in runs)
    node = Node()
    summary: dict[str, object] = {
        "kubelet": kubelet.label,
        "starts_without_a_triggered_probe": unprobed,
    }
    met = True
    lines = [
        "| latency | samples | min s | mean s | max s | model's name, nominal s | range s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in sorted({n for run in runs for n in run}):
        values = [v for run in runs for v in run.get(name, [])]
        model = names.get(name, name)
        low, high = node.spread[model]
        mean = statistics.fmean(values)
        inside = low <= mean <= high
        met = met and inside
        summary[name] = {
            "samples": len(values),
            "min": min(values),
            "mean": mean,
            "max": max(values),
            "per_run_mean": [statistics.fmean(r[name]) for r in runs if r.get(name)],
        }
        flag = "" if inside else " **outside**"
        lines.append(
            f"| {name} | {len(values)} | {min(values):.3f} | {mean:.3f}{flag} | {max(values):.3f} "
            f"| {model} {getattr(node, model):.3f} | {low:.3f}-{high:.3f} |"
        )
    starts = unprobed + len([v for run in runs for v in run.get("first_probe", [])])
    text = (
        "\n".join(lines)
        + f"\n\nkubelet {kubelet.label}, {args.runs} runs of {args.seconds:g} s; "
        + f"{unprobed} of {starts} never-ready starts had no triggered readiness run; goal "
        + ("met" if met else "MISSED")
    )
    print(text)
    DATA.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (DATA / f"node-latencies-{stamp}.json").write_text(
        json.dumps({"runs": runs, "summary": summary}, indent=1)
    )
    (DATA / f"node-latencies-{stamp}.md").write_text(text + "\n")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(interruptible(main, "calibrate_node"))
