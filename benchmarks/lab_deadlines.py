"""Are the labs' deadlines tight? Every lab wait's forecast against what kubelet did.

    sudo .venv/bin/python benchmarks/lab_deadlines.py [--runs 3] [pytest options]

Runs ``pytest labs`` ``--runs`` times with a report directory, reads every wait the labs
made (``waits.json``: the model's expected time, the deadline, and when it happened, in
seconds since the pod's first start) and checks issue 10's goal: no deadline above
1.5 x expected + 10 s, and every observation inside its deadline. Keeps the raw data in
benchmarks/data/ and prints a Markdown table with each wait's spread over the runs.
Exit 1 when the goal is missed or a lab run fails.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from probelab.model.waits import Forecast
from probelab.signals import interruptible, run_child

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data"


def run_lab(extra: list[str]) -> tuple[int, list[dict[str, Any]]]:
    with tempfile.TemporaryDirectory(prefix="probelab-deadlines-") as report:
        command = [sys.executable, "-m", "pytest", "-q", "labs", "--report-dir", report, *extra]
        code = run_child(command, cwd=ROOT)
        waits = Path(report, "waits.json")
        return code, json.loads(waits.read_text()) if waits.exists() else []


def table(runs: list[list[dict[str, Any]]]) -> tuple[str, bool]:
    by_wait: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for waits in runs:
        for wait in waits:
            by_wait[(wait["scenario"], wait["what"])].append(wait)
    lines = [
        "| scenario | wait | expected s | deadline s | goal bound s | observed s (min-med-max) |",
        "|---|---|---|---|---|---|",
    ]
    met = bool(by_wait)
    for (scenario, what), waits in sorted(by_wait.items()):
        expected, deadline = waits[0]["expected"], waits[0]["deadline"]
        forecast = Forecast(expected, deadline)
        bound = forecast.goal_bound()
        seen = sorted(w["observed"] for w in waits if w["observed"] is not None)
        late = any(at > deadline for at in seen)
        met = met and forecast.within_goal() and not late
        observed = (
            f"{seen[0]:.1f}-{statistics.median(seen):.1f}-{seen[-1]:.1f}"
            if seen
            else "never (as required)"
        )
        flag = "" if forecast.within_goal() and not late else " **MISSED**"
        numbers = f"{expected:.1f} | {deadline:.1f} | {bound:.1f}"
        lines.append(f"| {scenario} | {what} | {numbers} | {observed}{flag} |")
    return "\n".join(lines), met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args, extra = parser.parse_known_args()
    if not 1 <= args.runs <= 20:
        print("lab_deadlines: --runs must be 1-20", file=sys.stderr)
        return 2
    codes, runs = [], []
    for number in range(1, args.runs + 1):
        code, waits = run_lab(extra)
        print(f"run {number}: pytest exit {code}, {len(waits)} waits", file=sys.stderr, flush=True)
        codes.append(code)
        runs.append(waits)
    text, met = table(runs)
    summary = f"\n{args.runs} lab runs, pytest exits {codes}; goal " + ("met" if met else "MISSED")
    print(text + summary)
    DATA.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (DATA / f"lab-deadlines-{stamp}.json").write_text(
        json.dumps({"exits": codes, "runs": runs}, indent=1)
    )
    (DATA / f"lab-deadlines-{stamp}.md").write_text(text + summary + "\n")
    return 0 if met and not any(codes) else 1


if __name__ == "__main__":
    sys.exit(interruptible(main, "lab_deadlines"))
