"""Time to a verdict: `scripts/dev lab` from a clean state, and again warm.

    .venv/bin/python benchmarks/first_verdict.py [--rounds N]
    sudo .venv/bin/python benchmarks/first_verdict.py --cold [--keep]

Warm (the default): with the local cluster up and everything installed (a warm-up
`scripts/dev lab --collect-only` makes sure of that first, unmeasured), runs `scripts/dev
lab` N times and compares each run's wall time with the lab's own pytest session (the JUnit
report's testsuite time). The goal: the whole command within 1.3 x the lab, i.e. installing,
checking and starting add at most 30 %. Raw data: benchmarks/data/first-verdict-warm.json.

`--cold`: a new clone of this checkout's HEAD, with every cache and state of its own in a
new directory (probelab's cache and cluster state, GOCACHE, GOMODCACHE, pip without its
cache, uv's cache), runs `scripts/dev lab` once, as a newcomer's first run, then once more
warm. The Debian packages stay installed (they cannot be taken away; apt took 11-20 s on
fresh machines) and `go` stays the machine's. Goals (issue 11): the first run within 10
minutes, the second within 1.3 x its lab. The local cluster must be down (one runs at a
time). Each step's duration is read from the progress lines; raw data and the whole log go
to benchmarks/data/first-verdict-cold-<UTC time>.{json,log}.

Exits 1 when a goal is missed or a run fails, 2 when it cannot start.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from probelab.clusters.local.cluster import LocalCluster
from probelab.signals import child, interruptible, run_child

ROOT = Path(__file__).resolve().parent.parent
JUNIT = ROOT / "reports" / "junit.xml"
DATA = ROOT / "benchmarks" / "data" / "first-verdict-warm.json"
GOAL = 1.3
COLD_GOAL_SECONDS = 600
# An end line of a step: scripts/dev's `==> ok  what (12s)`, probelab's `ok  what (3.4s)`.
_STEP_END = re.compile(r"(?:==> )?(ok |failed) (.+) \((\d+(?:\.\d+)?)s\)\s*$")


def lab_session_seconds(junit: Path) -> float:
    """pytest's own session time, as the JUnit report records it."""
    root = ElementTree.parse(junit).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        raise SystemExit(f"{junit}: no testsuite")
    return float(suite.get("time", "nan"))


def run_dev_lab(
    *args: str, checkout: Path = ROOT, env: dict[str, str] | None = None, log: Path | None = None
) -> tuple[float, int]:
    """`scripts/dev lab` in `checkout`: its wall time and exit status; with `log`, its
    output is shown and appended there too."""
    argv = [str(checkout / "scripts" / "dev"), "lab", *args]
    start = time.monotonic()
    if log is None:
        code = run_child(argv, cwd=checkout, env=env)  # before the clock is read
        return time.monotonic() - start, code
    with (
        log.open("a") as sink,
        child(
            argv, cwd=checkout, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as process,
    ):
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            sink.write(line)
    return time.monotonic() - start, process.returncode


def own_caches(top: Path) -> dict[str, str]:
    """Environment that gives a run caches and state of its own under `top`."""
    return {
        "PROBELAB_HOME": str(top / "state"),
        "PROBELAB_CACHE": str(top / "cache"),
        "GOCACHE": str(top / "go" / "cache"),
        "GOMODCACHE": str(top / "go" / "mod"),
        "GOPATH": str(top / "go"),
        "PIP_NO_CACHE_DIR": "1",
        "UV_CACHE_DIR": str(top / "uv"),
        "XDG_CACHE_HOME": str(top / "xdg"),
    }


@dataclass(frozen=True)
class StepEnd:
    step: str
    seconds: float
    ok: bool


@dataclass(frozen=True)
class DevRun:
    wall: float
    exit: int
    lab: float  # NaN when the run ended before its JUnit report


def step_ends(log: str) -> list[StepEnd]:
    """Every step's end line: what, how long, whether it failed."""
    ends = []
    for line in log.splitlines():
        match = _STEP_END.search(line)
        if match:
            verdict, what, seconds = match.groups()
            ends.append(StepEnd(what, float(seconds), verdict == "ok "))
    return ends


def cold(keep: bool) -> int:
    if os.geteuid() != 0:
        print("--cold brings up a local cluster of its own: run it as root (sudo)")
        return 2
    if LocalCluster().is_up():
        print("the local cluster is up; one runs at a time: `scripts/dev cluster down` first")
        return 2
    top = Path(tempfile.mkdtemp(prefix="probelab-cold-", dir="/var/tmp"))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    log = DATA.parent / f"first-verdict-cold-{stamp}.log"
    DATA.parent.mkdir(parents=True, exist_ok=True)
    checkout = top / "probelab"
    env = {**os.environ, **own_caches(top)}
    try:
        subprocess.run(["git", "clone", "-q", str(ROOT), str(checkout)], check=True)
        first = _measured_run(checkout, env, log)
        steps = step_ends(log.read_text())  # the first run's, before the second adds its own
        second = _measured_run(checkout, env, log)
    finally:
        down = [str(checkout / "scripts" / "dev"), "cluster", "down", "--purge"]
        subprocess.run(down, cwd=checkout, env=env, check=False)
        if not keep:
            shutil.rmtree(top, ignore_errors=True)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    goals = {"first_wall_seconds": COLD_GOAL_SECONDS, "second_ratio": GOAL}
    out = log.with_suffix(".json")
    data = {
        "commit": commit,
        "load_average_at_end": os.getloadavg(),
        "first": asdict(first),
        "second": asdict(second),
        "steps": [asdict(end) for end in steps],
        "goals": goals,
    }
    out.write_text(json.dumps(data, indent=2) + "\n")
    ratio = second.wall / second.lab
    print(f"first run {first.wall:.0f} s (goal <= {COLD_GOAL_SECONDS} s), lab {first.lab:.0f} s")
    print(f"second run {second.wall:.0f} s, lab {second.lab:.0f} s: {ratio:.2f} x (<= {GOAL} x)")
    for end in sorted(steps, key=lambda e: -e.seconds)[:12]:
        print(f"  {end.seconds:>7.1f} s  {end.step}")
    print(f"raw data in {out.relative_to(ROOT)}, log in {log.relative_to(ROOT)}")
    met = first.wall <= COLD_GOAL_SECONDS and ratio <= GOAL
    return 0 if met and first.exit == 0 and second.exit == 0 else 1


def _measured_run(checkout: Path, env: dict[str, str], log: Path) -> DevRun:
    """One logged `scripts/dev lab`, with the lab's own session time (NaN when the run ended
    before its JUnit report)."""
    junit = checkout / "reports" / "junit.xml"
    junit.unlink(missing_ok=True)  # an earlier run's report is not this run's
    wall, code = run_dev_lab(checkout=checkout, env=env, log=log)
    return DevRun(wall, code, lab_session_seconds(junit) if junit.is_file() else float("nan"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cold", action="store_true", help="from a clean state (see above)")
    parser.add_argument("--keep", action="store_true", help="--cold: keep its directory")
    args = parser.parse_args()
    if args.cold:
        return cold(args.keep)
    rounds = args.rounds
    _, code = run_dev_lab("--collect-only", "-q")
    if code != 0:
        print(f"warm-up `scripts/dev lab --collect-only` failed ({code})")
        return 1
    runs = []
    for _ in range(rounds):
        wall, code = run_dev_lab()
        lab = lab_session_seconds(JUNIT)
        runs.append({"wall": wall, "lab": lab, "ratio": wall / lab, "exit": code})
        print(f"scripts/dev lab: {wall:.1f}s, the lab itself {lab:.1f}s: {wall / lab:.2f} x")
    ratios = [r["ratio"] for r in runs]
    median = statistics.median(ratios)
    DATA.parent.mkdir(parents=True, exist_ok=True)
    DATA.write_text(json.dumps({"goal": GOAL, "runs": runs, "median": median}, indent=2) + "\n")
    print(
        f"median {median:.2f} x (spread {min(ratios):.2f}-{max(ratios):.2f}), goal <= {GOAL} x; "
        f"raw data in {DATA.relative_to(ROOT)}"
    )
    return 0 if median <= GOAL and all(r["exit"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(interruptible(main, "first_verdict"))
