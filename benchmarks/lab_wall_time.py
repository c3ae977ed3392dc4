"""The whole lab's wall time against its slowest scenario's, repeated.

    sudo .venv/bin/python benchmarks/lab_wall_time.py [--rounds N] [-- extra pytest options]

Against one cluster that is already up: the first round runs each lab file alone, then all
of them in one session; later rounds run the two slowest files of the first round alone and
the whole lab again (the others are far from the slowest). Every scenario starts at the
session's start in its own namespace, so the whole lab should take about as long as its
slowest file: the goal (issue 11) is a median ratio whole / slowest of at most 1.1. Exits 1
when the median misses it or a pytest session fails; every session's wall time and exit
status go to benchmarks/data/lab-wall-time-<time>.json.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from probelab.signals import interruptible, run_child

ROOT = Path(__file__).resolve().parent.parent
LABS = sorted((ROOT / "labs").glob("test_*.py"))
DATA = ROOT / "benchmarks" / "data"
GOAL = 1.1
REPEATED = 2  # how many of the slowest files later rounds run alone again


@dataclass
class Session:
    files: list[str]
    wall: float
    exit: int


@dataclass
class Round:
    alone: list[Session]
    whole: Session
    slowest: str
    ratio: float


def _session(paths: list[Path], extra: list[str]) -> Session:
    """One pytest session's wall time and exit status."""
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--keep-cluster"]
    start = time.monotonic()
    code = run_child([*argv, *map(str, paths), *extra], cwd=ROOT, stdout=subprocess.DEVNULL)
    return Session([p.name for p in paths], round(time.monotonic() - start, 1), code)


def _round(files: list[Path], extra: list[str]) -> Round:
    alone = [_session([path], extra) for path in files]
    whole = _session(LABS, extra)
    slowest = max(alone, key=lambda s: s.wall)
    ratio = whole.wall / slowest.wall
    print(f"whole {whole.wall} s / slowest ({slowest.files[0]}) {slowest.wall} s = {ratio:.2f}")
    return Round(alone, whole, slowest.files[0], round(ratio, 3))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    split = sys.argv.index("--") if "--" in sys.argv else len(sys.argv)
    rounds_wanted = parser.parse_args(sys.argv[1:split]).rounds
    extra = sys.argv[split + 1 :]
    rounds = [_round(LABS, extra)]
    by_wall = sorted(rounds[0].alone, key=lambda s: -s.wall)
    repeated = [ROOT / "labs" / s.files[0] for s in by_wall[:REPEATED]]
    rounds += [_round(repeated, extra) for _ in range(rounds_wanted - 1)]
    ratios = [r.ratio for r in rounds]
    median = statistics.median(ratios)
    failed = [s for r in rounds for s in [*r.alone, r.whole] if s.exit != 0]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = DATA / f"lab-wall-time-{stamp}.json"
    DATA.mkdir(parents=True, exist_ok=True)
    summary = {"goal": GOAL, "median": median, "min": min(ratios), "max": max(ratios)}
    out.write_text(json.dumps({**summary, "rounds": [asdict(r) for r in rounds]}, indent=2) + "\n")
    print(
        f"whole / slowest: median {median:.2f} (spread {min(ratios):.2f}-{max(ratios):.2f}, "
        f"{len(rounds)} rounds), goal <= {GOAL}; {len(failed)} failed sessions; "
        f"raw data in {out.relative_to(ROOT)}"
    )
    return 0 if median <= GOAL and not failed else 1


if __name__ == "__main__":
    sys.exit(interruptible(main, "lab_wall_time"))
