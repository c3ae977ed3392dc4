"""Compare the whole lab's wall time with its slowest scenario's.

    sudo .venv/bin/python benchmarks/lab_wall_time.py [-- extra pytest options]

Runs each lab file alone, then all of them in one session, against the same (already up)
cluster, and prints each wall time and the ratio whole / slowest. The scenarios start
together in their own namespaces, so the goal is a ratio of at most 1.2.
"""

import subprocess
import sys
import time
from pathlib import Path

LABS = sorted(Path(__file__).resolve().parent.parent.glob("labs/test_*.py"))


def _pytest(paths: list[str], extra: list[str]) -> float:
    start = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--keep-cluster",
            *paths,
            *extra,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - start


def main() -> int:
    extra = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    alone = {path.name: _pytest([str(path)], extra) for path in LABS}
    whole = _pytest([str(path) for path in LABS], extra)
    slowest = max(alone, key=alone.__getitem__)
    print("| run | wall time |\n|---|---|")
    for name, seconds in alone.items():
        print(f"| `{name}` alone | {seconds:.1f} s |")
    print(f"| whole lab, one session | {whole:.1f} s |")
    print(f"\nwhole / slowest (`{slowest}`) = {whole / alone[slowest]:.2f} (goal <= 1.2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
