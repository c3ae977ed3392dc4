"""Time the local cluster's lifecycle and measure its disk use.

    sudo .venv/bin/python benchmarks/cluster_lifecycle.py [--cold] [--rounds N]

Measures `down` then warm `up` N times (binaries cached, state kept), and with `--cold`
first builds every binary into empty Go and probelab caches (modules are downloaded
again from the module proxy: minutes). Prints a Markdown table for docs/benchmarks.md
with each timing's median and spread, keeps the raw timings in
benchmarks/data/cluster-lifecycle-<time>.json, and exits 1 when the median warm `up` or the
cold build misses its goal.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from probelab.clusters.local.build import Builder
from probelab.clusters.local.cluster import LocalCluster
from probelab.clusters.local.releases import DEFAULT_KUBERNETES, parse
from probelab.signals import interruptible, run_child

DATA = Path(__file__).resolve().parent / "data"
WARM_UP_GOAL = 30.0  # seconds, median of the rounds
COLD_BUILD_GOAL = 30 * 60.0  # seconds


def _timed(argv: list[str]) -> float:
    start = time.monotonic()
    _checked(argv)
    return time.monotonic() - start


def _checked(argv: list[str]) -> None:
    """`argv` to its end (an interrupt lets it clean up); a failure ends the benchmark."""
    if (code := run_child(argv, stdout=subprocess.DEVNULL)) != 0:
        raise SystemExit(f"cluster_lifecycle: {' '.join(argv[-2:])} exited {code}")


def _du(path: Path) -> float:
    """Disk used under `path`, in GiB (du, so sparse and shared files count as the kernel does)."""
    if not path.exists():
        return 0.0
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) / 2**20


def cold_build() -> float:
    """Seconds to build every binary with empty Go module and build caches."""
    with tempfile.TemporaryDirectory(prefix="probelab-cold-") as scratch:
        root = Path(scratch)
        saved = dict(os.environ)
        os.environ.update(GOMODCACHE=str(root / "mod"), GOCACHE=str(root / "gocache"))
        try:
            start = time.monotonic()
            builder = Builder(root / "probelab")
            builder.all(builder.versions(parse(DEFAULT_KUBERNETES)))
            elapsed = time.monotonic() - start
            subprocess.run(["go", "clean", "-modcache"], check=False)
        finally:
            os.environ.clear()
            os.environ.update(saved)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="also time a cold build")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not 1 <= args.rounds <= 20:
        print("cluster_lifecycle: --rounds must be 1-20", file=sys.stderr)
        return 2
    probelab = [sys.executable, "-m", "probelab.cli", "cluster"]
    cluster = LocalCluster()
    rows = []
    cold = cold_build() if args.cold else None
    if cold is not None:
        rows.append(("cold build of all binaries (empty Go caches)", f"{cold:.0f} s"))
    _checked([*probelab, "up"])
    downs, ups = [], []
    for _ in range(args.rounds):
        downs.append(_timed([*probelab, "down"]))
        ups.append(_timed([*probelab, "up"]))
    rows += [
        (f"warm `up` (median of {args.rounds})", _spread(ups)),
        (f"`down` (median of {args.rounds})", _spread(downs)),
        ("disk: state directory", f"{_du(cluster.layout.root):.2f} GiB"),
        ("disk: probelab cache (binaries, base image)", f"{_du(cluster.config.cache):.2f} GiB"),
        ("disk: Go module cache", f"{_du(Path(_go_env('GOMODCACHE'))):.2f} GiB"),
        ("disk: Go build cache", f"{_du(Path(_go_env('GOCACHE'))):.2f} GiB"),
    ]
    met = statistics.median(ups) <= WARM_UP_GOAL and (cold is None or cold <= COLD_BUILD_GOAL)
    print("| measurement | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = DATA / f"cluster-lifecycle-{stamp}.json"
    DATA.mkdir(parents=True, exist_ok=True)
    goals = {"warm_up_median_s": WARM_UP_GOAL, "cold_build_s": COLD_BUILD_GOAL}
    raw = {"goals": goals, "met": met, "cold_build_s": cold, "ups_s": ups, "downs_s": downs}
    out.write_text(json.dumps(raw, indent=1) + "\n")
    print(f"\ngoals (warm `up` <= {WARM_UP_GOAL:g} s, cold build <= {COLD_BUILD_GOAL / 60:g} min): "
          f"{'met' if met else 'MISSED'}; raw data in {out}")  # fmt: skip
    return 0 if met else 1


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} s ({min(values):.1f}-{max(values):.1f})"


def _go_env(name: str) -> str:
    go = shutil.which("go") or "go"
    return subprocess.run(
        [go, "env", name], capture_output=True, text=True, check=True
    ).stdout.strip()


if __name__ == "__main__":
    sys.exit(interruptible(main, "cluster_lifecycle"))
