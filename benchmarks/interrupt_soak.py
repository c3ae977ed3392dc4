"""Interrupt the lab at random moments and count what each interrupted run leaves behind.

    sudo .venv/bin/python benchmarks/interrupt_soak.py --runs N [--seed S] [--via dev|tox|pytest]
        [-- pytest options]

Each run is `labs/<file>` against the (already up) cluster, the README's way (`--via dev`,
the default: `scripts/dev lab -k <file>`), through tox alone or with pytest alone,
in a session of its own (`--namespace-prefix soak<i>-<tag>`). It is sent SIGINT at a random
moment between 2 s and --latest s after it starts (the image build, applying, a wait, the
teardown), to the whole process group as a terminal's Ctrl-C is; every fourth one SIGTERM
instead, to the top process only (as `kill` or a cancelled CI job); the middle one SIGKILL
to the group. The run after the killed one is left to finish, and its sweep must delete
what the killed one left. After each run ends the
benchmark waits (a watch, bounded by NAMESPACE_GONE) for the run's namespaces to go and
then counts leaks:

- namespaces of the run still there and not terminating (for the killed run: after the
  next run, whose sweep must delete them);
- run Leases whose holder process is gone;
- processes left in the run's session (it is started as a session leader).

The cluster's own state (veths, mounts under PROBELAB_HOME, iptables rules) is recorded
before and after the soak, as context: other users' pods on a shared cluster move it too.
Each run also records the machine's load average when it starts, how long its teardown
took after the signal and how long its namespaces took to go; the summary gives their
spread. It refuses to start while the 1-minute load is --max-load or more (lab timing
breaks under load, so the moments of the interrupts would mean something else).
Raw data goes to benchmarks/data/interrupt-soak-<N>.json; exit 1 on any leak.
"""

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client

from probelab import kube
from probelab.clusters.local.cluster import LocalCluster
from probelab.runs import LEASE_NAMESPACE, holder_alive, live_namespaces
from probelab.signals import as_from_a_terminal

ROOT = Path(__file__).resolve().parent.parent
LAB = "labs/test_03_good_liveness.py"
NAMESPACE_GONE = 180.0  # kubelet must stop the pods first (their grace period is 30 s)
RUN_LIMIT = 900.0  # a run that does not end after its signal counts as a leak


def _session_processes(sid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid and fields[0] != "Z":  # field 6: session id
            found.append(int(entry.name))
    return found


def _wait_gone(api: client.ApiClient, prefix: str) -> float:
    """Seconds until the run's namespaces were gone (or the bound passed)."""
    began = time.monotonic()
    core = client.CoreV1Api(api)
    for name in live_namespaces(api, prefix):
        with contextlib.suppress(AssertionError):  # counted as a leak afterwards
            kube.wait_deleted(
                core.list_namespace,
                timeout=NAMESPACE_GONE,
                what=f"namespace {name}",
                field_selector=f"metadata.name={name}",
            )
    return round(time.monotonic() - began, 1)


def _stale_leases(api: client.ApiClient) -> list[str]:
    leases = client.CoordinationV1Api(api).list_namespaced_lease(
        LEASE_NAMESPACE, label_selector=kube.RUN_LABEL
    )
    return [
        str(lease.metadata.name if lease.metadata else "")
        for lease in leases.items
        if lease.spec and not holder_alive(str(lease.spec.holder_identity or ""))
    ]


def _host_state(local: LocalCluster) -> dict[str, int]:
    def count(argv: list[str]) -> int:
        out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
        return len(out.splitlines())

    root = str(local.layout.root.resolve()) + "/"
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return {
        "veths": count(["ip", "-o", "link", "show", "type", "veth"]),
        "mounts_under_home": sum(1 for m in mounts if m.startswith(root)),
        "iptables_rules": count(["iptables-save"]),
    }


def _command(via: str, prefix: str, extra: list[str]) -> list[str]:
    """The lab the README's way (`scripts/dev lab`), through tox's `labs` environment
    alone, or pytest alone."""
    options = ["--cluster=local", "--keep-cluster", f"--namespace-prefix={prefix}", *extra]
    if via == "dev":  # `scripts/dev lab` always collects labs/; -k keeps the one file
        return [str(ROOT / "scripts" / "dev"), "lab", "-k", Path(LAB).stem, *options]
    if via == "tox":
        tox = str(Path(sys.executable).parent / "tox")
        return [tox, "run", "-q", "-e", "labs", "--", LAB, *options]
    return [sys.executable, "-m", "pytest", LAB, "-p", "no:cacheprovider", *options]


def _deliver(process: subprocess.Popen[str], signum: int) -> None:
    """SIGINT and SIGKILL to the whole process group, as a terminal's Ctrl-C (or a kill of
    everything) reaches tox and pytest alike; SIGTERM to the top process only, as `kill` or a
    cancelled CI job sends it."""
    if signum == signal.SIGTERM:
        os.kill(process.pid, signum)
    else:
        os.killpg(process.pid, signum)


def _one_run(
    index: int, tag: str, signum: int, after: float, via: str, extra: list[str]
) -> dict[str, Any]:
    prefix = f"soak{index}-{tag}"
    command = _command(via, prefix, extra)
    load = round(os.getloadavg()[0], 2)
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=as_from_a_terminal,  # SIGINT as a terminal delivers it, even from nohup
    )
    try:
        _, err = process.communicate(timeout=after)
        signalled = False
    except subprocess.TimeoutExpired:
        _deliver(process, signum)
        signalled = True
        try:
            _, err = process.communicate(timeout=RUN_LIMIT)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
    lines = [line for line in err.splitlines() if line.strip()]
    ended = time.monotonic() - started
    return {
        "run": index,
        "via": via,
        "prefix": prefix,
        "signal": signal.Signals(signum).name if signalled else None,
        "at_seconds": round(after, 1),
        "ended_after_seconds": round(ended, 1),
        "teardown_seconds": round(ended - after, 1) if signalled else None,
        "load_at_start": load,
        "exit": process.returncode,
        "last_progress": lines[-1][:160] if lines else "",
        "pid": process.pid,
    }


def _spread(values: list[float]) -> str:
    if not values:
        return "none"
    return (
        f"min {min(values):.1f} s, median {statistics.median(values):.1f} s, "
        f"max {max(values):.1f} s (n={len(values)})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latest", type=float, default=90.0, help="latest interrupt, seconds")
    parser.add_argument(
        "--max-load", type=float, default=3.0, help="refuse to start at this 1-min load or more"
    )
    parser.add_argument(
        "--via",
        choices=("dev", "tox", "pytest"),
        default="dev",
        help="run the lab with the README's `scripts/dev lab` (default), tox, or pytest alone",
    )
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    if (load := os.getloadavg()[0]) >= args.max_load:
        print(
            f"interrupt_soak: load average {load:.2f} >= --max-load {args.max_load}; "
            "run it on a quieter machine",
            file=sys.stderr,
        )
        return 2
    rng = random.Random(args.seed)
    local = LocalCluster()
    api = kube.api_client(local.layout.kubeconfig, local.config.context)
    tag = uuid.uuid4().hex[:4]
    host_before = _host_state(local)
    killed = args.runs // 2
    results: list[dict[str, Any]] = []
    for index in range(args.runs):
        if index == killed:
            signum = signal.SIGKILL
        elif index % 4 == 3:
            signum = signal.SIGTERM
        else:
            signum = signal.SIGINT
        after = rng.uniform(2.0, args.latest)
        if index == killed + 1:  # the new run after the kill goes to the end: it must sweep
            after = RUN_LIMIT
        run = _one_run(index, tag, signum, after, args.via, extra)
        run["namespaces_gone_seconds"] = (
            _wait_gone(api, run["prefix"]) if signum != signal.SIGKILL else None
        )
        run["leaked_namespaces"] = live_namespaces(api, run["prefix"])
        run["leaked_processes"] = _session_processes(run["pid"])
        if index == killed + 1:  # this run's sweep must have taken the killed run's
            _wait_gone(api, results[killed]["prefix"])
            results[killed]["leaked_namespaces"] = live_namespaces(api, results[killed]["prefix"])
        results.append(run)
        print(json.dumps(run), flush=True)
    stale_leases = _stale_leases(api)
    host_after = _host_state(local)
    leaks = sum(len(r["leaked_namespaces"]) + len(r["leaked_processes"]) for r in results)
    leaks += len(stale_leases)
    data = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "runs": args.runs,
        "seed": args.seed,
        "lab": LAB,
        "via": args.via,
        "results": results,
        "stale_leases": stale_leases,
        "host_before": host_before,
        "host_after": host_after,
        "load_at_end": round(os.getloadavg()[0], 2),
        "leaks": leaks,
    }
    out = ROOT / "benchmarks" / "data" / f"interrupt-soak-{args.runs}.json"
    out.write_text(json.dumps(data, indent=2) + "\n")
    columns = "run load signal at ended_after teardown ns_gone exit leaked_ns leaked_procs"
    print("\n| " + " | ".join(c.replace("_", " ") for c in columns.split()) + " |")
    print("|---" * len(columns.split()) + "|")
    for r in results:
        at = f"{r['at_seconds']} s" if r["signal"] else "-"
        print(
            f"| {r['run']} | {r['load_at_start']} | {r['signal'] or '(finished)'} | {at} | "
            f"{r['ended_after_seconds']} s | {r['teardown_seconds'] or '-'} | "
            f"{r['namespaces_gone_seconds'] or '-'} | {r['exit']} | "
            f"{len(r['leaked_namespaces'])} | {len(r['leaked_processes'])} |"
        )
    signalled = [r for r in results if r["signal"] in ("SIGINT", "SIGTERM")]
    print("\nteardown after SIGINT/SIGTERM: " + _spread([r["teardown_seconds"] for r in signalled]))
    gone = [
        r["namespaces_gone_seconds"] for r in results if r["namespaces_gone_seconds"] is not None
    ]
    print("namespaces gone after the run ended: " + _spread(gone))
    loads = [r["load_at_start"] for r in results]
    print(
        f"load average at each start: {min(loads)}-{max(loads)}, at the end {data['load_at_end']}"
    )
    print(f"\nstale leases: {len(stale_leases)}; host before {host_before}, after {host_after}")
    print(f"leaks: {leaks} over {args.runs} runs (goal 0); raw data: {out}")
    api.close()
    return 1 if leaks else 0


if __name__ == "__main__":
    sys.exit(main())
