"""Time to a verdict on a warm machine: `scripts/dev lab` against the lab itself.

    .venv/bin/python benchmarks/first_verdict.py [--rounds N]

With the local cluster up and everything installed (a warm-up `scripts/dev lab
--collect-only` makes sure of that first, unmeasured), runs `scripts/dev lab` N times and
compares each run's wall time with the lab's own pytest session (the JUnit report's
testsuite time). The goal: the whole command within 1.3 x the lab, i.e. installing,
checking and starting add at most 30 %. Exits 1 when the median ratio misses it. Raw data
goes to benchmarks/data/first-verdict-warm.json.

Not measured here: a fresh machine (its goal is 10 minutes), which needs a machine
without probelab's packages, caches and cluster state.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JUNIT = ROOT / "reports" / "junit.xml"
DATA = ROOT / "benchmarks" / "data" / "first-verdict-warm.json"
GOAL = 1.3


def lab_session_seconds(junit: Path) -> float:
    """pytest's own session time, as the JUnit report records it."""
    root = ElementTree.parse(junit).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        raise SystemExit(f"{junit}: no testsuite")
    return float(suite.get("time", "nan"))


def run_dev_lab(*args: str) -> tuple[float, int]:
    start = time.monotonic()
    result = subprocess.run([str(ROOT / "scripts" / "dev"), "lab", *args], cwd=ROOT, check=False)
    return time.monotonic() - start, result.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    rounds = parser.parse_args().rounds
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
    raise SystemExit(main())
