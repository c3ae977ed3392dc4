"""The whole lab on each Kubernetes minor of the local cluster: build time, lab result, wall time.

    sudo .venv/bin/python benchmarks/version_matrix.py [--lock FILE] [--state-log FILE]
        [--back-to V] 1.33 1.34 ...

For each version: build it (`probelab cluster build`, timed; the running cluster is not
touched), then, holding FILE exclusively when given (a shared machine's cluster lock),
switch the local cluster to it, run `pytest labs/`, and switch back to `--back-to`
(default v1.35.4) before letting the lock go, so the window without the default cluster
is just one `up`, one lab and one `up`; `--state-log` gets a line when the window opens and
when it closes, for whoever shares the cluster. Appends one JSON line per version to
benchmarks/data/versions/runs.jsonl and keeps each step's output next to it. Exits 1 when
any lab run fails.
"""

import argparse
import json
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

from probelab.locks import exclusive
from probelab.signals import interruptible, run_child

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data" / "versions"
PROBELAB = [sys.executable, "-m", "probelab.cli", "cluster"]


def _timed(argv: list[str], log: Path) -> tuple[int, float]:
    """Exit status and seconds of `argv`, its output kept in `log`."""
    start = time.monotonic()
    with log.open("w") as out:
        code = run_child(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    return code, round(time.monotonic() - start, 1)


def _server_version() -> str | None:
    from probelab.clusters.local.cluster import LocalCluster

    versions = LocalCluster().last_versions()
    return versions.kubernetes if versions else None


def _note(state_log: Path | None, text: str) -> None:
    if state_log is not None:
        with state_log.open("a") as out:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            out.write(f"{stamp} version_matrix: {text}\n")


def measure(
    version: str, lock: Path | None, back_to: str, state_log: Path | None
) -> dict[str, object]:
    tag = version.replace("/", "_")
    build_rc, build_s = _timed(
        [*PROBELAB, "build", "--kubernetes-version", version], DATA / f"build-{tag}.log"
    )
    row: dict[str, object] = {"requested": version, "build_rc": build_rc, "build_s": build_s}
    if build_rc != 0:
        return row
    with exclusive(lock, f"waiting for {lock}") if lock else nullcontext():
        _note(state_log, f"exclusive: switching to {version} for the whole lab, then {back_to}")
        up_rc, up_s = _timed(
            [*PROBELAB, "up", "--kubernetes-version", version], DATA / f"up-{tag}.log"
        )
        row.update(server=_server_version(), up_rc=up_rc, up_s=up_s)
        if up_rc == 0:
            lab_rc, lab_s = _timed(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "labs/",
                    "--cluster=local",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    f"--junitxml={DATA / f'lab-{tag}.junit.xml'}",
                ],
                DATA / f"lab-{tag}.log",
            )
            row.update(lab_rc=lab_rc, lab_s=lab_s)
        back_rc, back_s = _timed(
            [*PROBELAB, "up", "--kubernetes-version", back_to], DATA / f"back-{tag}.log"
        )
        row.update(back_to=back_to, back_rc=back_rc, back_s=back_s)
        _note(
            state_log, f"back on {_server_version()} (up exit {back_rc}); lab on {version}: {row}"
        )
    row["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="+")
    parser.add_argument("--lock", type=Path, help="hold this file exclusively while switching")
    parser.add_argument("--state-log", type=Path, help="append a line per switch here")
    parser.add_argument("--back-to", default="v1.35.4")
    args = parser.parse_args()
    DATA.mkdir(parents=True, exist_ok=True)
    failed = False
    for version in args.versions:
        row = measure(version, args.lock, args.back_to, args.state_log)
        with (DATA / "runs.jsonl").open("a") as runs:
            runs.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
        failed |= row.get("lab_rc") != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(interruptible(main, "version_matrix"))
