"""Time the local cluster's lifecycle and measure its disk use.

    sudo .venv/bin/python benchmarks/cluster_lifecycle.py [--cold] [--rounds N]

Measures `down` then warm `up` N times (binaries cached, state kept), and with `--cold`
first builds every binary into empty Go and probelab caches (modules are downloaded
again from the module proxy: minutes). Prints a Markdown table for docs/benchmarks.md.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from probelab.clusters.local.build import Builder
from probelab.clusters.local.cluster import LocalCluster
from probelab.clusters.local.releases import DEFAULT_KUBERNETES, parse
from probelab.signals import interruptible, run_child


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
    probelab = [sys.executable, "-m", "probelab.cli", "cluster"]
    cluster = LocalCluster()
    rows = []
    if args.cold:
        rows.append(("cold build of all binaries (empty Go caches)", f"{cold_build():.0f} s"))
    _checked([*probelab, "up"])
    downs, ups = [], []
    for _ in range(args.rounds):
        downs.append(_timed([*probelab, "down"]))
        ups.append(_timed([*probelab, "up"]))
    rows += [
        (f"warm `up` (median of {args.rounds})", f"{statistics.median(ups):.1f} s"),
        (f"`down` (median of {args.rounds})", f"{statistics.median(downs):.1f} s"),
        ("disk: state directory", f"{_du(cluster.layout.root):.2f} GiB"),
        ("disk: probelab cache (binaries, base image)", f"{_du(cluster.config.cache):.2f} GiB"),
        ("disk: Go module cache", f"{_du(Path(_go_env('GOMODCACHE'))):.2f} GiB"),
        ("disk: Go build cache", f"{_du(Path(_go_env('GOCACHE'))):.2f} GiB"),
    ]
    print("| measurement | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0


def _go_env(name: str) -> str:
    go = shutil.which("go") or "go"
    return subprocess.run(
        [go, "env", name], capture_output=True, text=True, check=True
    ).stdout.strip()


if __name__ == "__main__":
    sys.exit(interruptible(main, "cluster_lifecycle"))
