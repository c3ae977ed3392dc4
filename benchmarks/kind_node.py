"""kind with a node image made here: image build cold and warm, cluster creation, lab time.

    sudo DOCKER_HOST=unix:///run/probelab-kind/docker.sock \\
        .venv/bin/python benchmarks/kind_node.py [--repeat 3] [--cold-repeat 2] \\
        [--lab-repeat 2] [--phases images,create,labs,ecr] [--lock FILE]

- image, cold: the node's Debian root (debootstrap), its base image and the node image made
  again; the Go builds are the local cluster's and stay cached (they are its cost);
- image, parts cached: only the node image made again (root tarball and base image kept);
- image, warm: the lookup a second `build` does;
- `kind create cluster` with that image until every node is Ready (the network guard
  included), then `kind delete cluster`;
- the whole lab (`pytest labs`) on a kept kind cluster and on the local cluster (which must
  be up; with `--lock FILE`, a shared machine's cluster lock, each of its runs holds FILE
  shared);
- the whole lab on one kept kind cluster with `--registry=ecr` against moto (the stand-in
  keeps the image in kind's registry) and with kind's registry itself, taking turns so
  that a change of the machine's load hits both alike, after one warm-up (timed, not in the goal)
  run that pushes the image (both name the same repository of kind's registry, so no timed
  run pushes); moto runs for the whole phase, so from the second ECR run on the repository
  is already there, as for a student.

Goals, set before measuring: warm lookup <= 10 s; create to Ready <= 120 s (the provider's
own Ready deadline); the lab's median wall time on kind at most 1.5x the local cluster's;
with the ECR stand-in at most 1.2x the same lab with kind's registry.
Raw timings go to benchmarks/data/kind_node-<UTC time>.json; exit 1 when a goal is missed.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path

from probelab import kube
from probelab.aws_stub import MotoServer
from probelab.clusters import kind
from probelab.clusters.kind_node.build import NodeImageBuilder
from probelab.clusters.local.config import LocalClusterConfig
from probelab.clusters.local.releases import DEFAULT_KUBERNETES, parse
from probelab.docker_engine import docker_client
from probelab.locks import exclusive
from probelab.signals import interruptible, run_child

ROOT = Path(__file__).resolve().parent.parent
GOALS = {
    "warm_lookup_s": 10.0,
    "create_ready_s": 120.0,
    "lab_kind_over_local": 1.5,
    "lab_ecr_over_kind_registry": 1.2,
}


def _timed(action: Callable[[], object]) -> float:
    start = time.monotonic()
    action()
    return time.monotonic() - start


def _spread(values: list[float]) -> str:
    low, high, middle = min(values), max(values), statistics.median(values)
    return f"median {middle:.1f} s (min {low:.1f}, max {high:.1f}, n={len(values)})"


def image_builds(repeat: int, cold_repeat: int) -> dict[str, list[float]]:
    engine = docker_client(None)
    cache = LocalClusterConfig().cache
    builder = NodeImageBuilder(engine, cache)
    versions = builder.builder.versions(parse(DEFAULT_KUBERNETES))
    built = builder.build(versions)  # everything in place once, so the Go builds are cached
    base = builder.base_image_name(builder.rootfs())
    times: dict[str, list[float]] = {"cold": [], "parts_cached": [], "warm": []}
    for _ in range(cold_repeat):
        engine.images.remove(built.reference, force=True)
        engine.images.remove(base, force=True)
        builder.rootfs().unlink()
        times["cold"].append(_timed(lambda: builder.build(versions)))
    for _ in range(repeat):
        engine.images.remove(built.reference, force=True)
        times["parts_cached"].append(_timed(lambda: builder.build(versions)))
    for _ in range(repeat):
        times["warm"].append(_timed(lambda: builder.build(versions)))
    engine.close()
    return times


def creations(repeat: int) -> list[float]:
    settings = kind.KindSettings(name="probelab-bench", node_image=kind.BUILD_HERE)
    chosen, built = kind.node_image(settings)
    cluster = kind.KindCluster(chosen)
    seconds = []
    for _ in range(repeat):
        undo: list[Callable[[], None]] = []
        try:
            start = time.monotonic()
            kind.guard_network(undo)
            undo.append(cluster.delete)
            cluster.create(kind.cluster_config(built))
            api = kube.api_client(cluster.write_kubeconfig(), chosen.context)
            cluster.wait_node_ready(api)
            seconds.append(time.monotonic() - start)
            api.close()
        finally:
            while undo:
                undo.pop()()
    return seconds


def _lab(
    cluster: str,
    outcomes: list[float],
    options: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> float:
    """The lab's wall time; its exit status goes to `outcomes` (a failed test still timed)."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "labs"]
    command += [f"--cluster={cluster}", "--keep-cluster", *options]
    start = time.monotonic()
    outcomes.append(run_child(command, cwd=ROOT, stdout=subprocess.DEVNULL, env=env))
    return time.monotonic() - start


def _local_lab(outcomes: list[float], lock: Path | None) -> float:
    """`_lab` on the local cluster, holding `lock` shared while it runs when given."""
    with exclusive(lock, f"waiting for {lock}", shared=True) if lock else nullcontext():
        return _lab("local", outcomes)


def labs(repeat: int, lock: Path | None) -> dict[str, list[float]]:
    os.environ["PROBELAB_KIND_NODE_IMAGE"] = kind.BUILD_HERE  # for the pytest runs too
    handle, teardown = kind.bring_up()  # created once and kept across the runs
    kind_exits: list[float] = []
    local_exits: list[float] = []
    try:
        on_kind = [_lab("kind", kind_exits) for _ in range(repeat)]
    finally:
        if handle.owned:
            teardown()
    on_local = [_local_lab(local_exits, lock) for _ in range(repeat)]
    return {"kind": on_kind, "local": on_local, "kind_exit": kind_exits, "local_exit": local_exits}


def ecr_labs(repeat: int, home: Path) -> dict[str, list[float]]:
    """The lab on one kind cluster, with the ECR stand-in and with kind's registry in turn."""
    os.environ["PROBELAB_KIND_NODE_IMAGE"] = kind.BUILD_HERE
    handle, teardown = kind.bring_up()
    times: dict[str, list[float]] = {"ecr": [], "kind_registry": [], "warmup": []}
    exits: dict[str, list[float]] = {"ecr": [], "kind_registry": [], "warmup": []}
    try:
        # Pushes the image once and pulls it into the node: both registries' repository is
        # `fastapi-health` in kind's registry, so the timed runs compare the steady state.
        times["warmup"].append(_lab("kind", exits["warmup"]))
        with MotoServer.running() as moto:
            ecr_env = dict(os.environ)
            for name, value in moto.environment(home).items():
                if value is None:
                    ecr_env.pop(name, None)
                else:
                    ecr_env[name] = value
            for _ in range(repeat):
                times["ecr"].append(_lab("kind", exits["ecr"], ("--registry=ecr",), ecr_env))
                times["kind_registry"].append(_lab("kind", exits["kind_registry"]))
    finally:
        if handle.owned:
            teardown()
    return times | {f"{name}_exit": codes for name, codes in exits.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cold-repeat", type=int, default=2, help="debootstrap each time")
    parser.add_argument("--lab-repeat", type=int, default=2)
    parser.add_argument("--phases", default="images,create,labs,ecr", help="comma-separated")
    parser.add_argument("--lock", type=Path, help="held shared by each local-cluster lab run")
    args = parser.parse_args()
    phases = set(args.phases.split(","))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = ROOT / "benchmarks" / "data" / f"kind_node-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, object] = {"kubernetes": DEFAULT_KUBERNETES, "goals": GOALS}
    missed = []

    def keep() -> None:  # after every phase, so a failure later loses nothing
        out.write_text(json.dumps(data, indent=2) + "\n")

    if "images" in phases:
        images = image_builds(args.repeat, args.cold_repeat)
        data["image_build_s"] = images
        keep()
        if max(images["warm"]) > GOALS["warm_lookup_s"]:
            missed.append("warm lookup")
        print(f"| node image, cold (debootstrap included) | {_spread(images['cold'])} |")
        print(f"| node image, root and base cached | {_spread(images['parts_cached'])} |")
        print(f"| node image, warm (lookup) | {_spread(images['warm'])} |")
    if "create" in phases:
        create = creations(args.repeat)
        data["create_ready_s"] = create
        keep()
        if max(create) > GOALS["create_ready_s"]:
            missed.append("create to Ready")
        print(f"| `kind create cluster` to Ready | {_spread(create)} |")
    if "labs" in phases:
        lab = labs(args.lab_repeat, args.lock)
        print(f"lab exit statuses: kind {lab['kind_exit']}, local {lab['local_exit']}")
        ratio = statistics.median(lab["kind"]) / statistics.median(lab["local"])
        data.update(lab_wall_s=lab, lab_kind_over_local=ratio)
        keep()
        print(f"| lab on kind | {_spread(lab['kind'])} |")
        print(f"| lab on the local cluster | {_spread(lab['local'])} |")
        print(
            f"\nlab kind / local (medians) = {ratio:.2f} (goal <= {GOALS['lab_kind_over_local']})"
        )
        if ratio > GOALS["lab_kind_over_local"]:
            missed.append("lab kind/local")
    if "ecr" in phases:
        with tempfile.TemporaryDirectory(prefix="probelab-bench-aws-") as home:
            ecr = ecr_labs(args.lab_repeat, Path(home))  # no AWS files: moto's keys only
        print(
            f"lab exit statuses: ECR {ecr['ecr_exit']}, kind registry {ecr['kind_registry_exit']}"
        )
        ratio = statistics.median(ecr["ecr"]) / statistics.median(ecr["kind_registry"])
        data.update(lab_ecr_wall_s=ecr, lab_ecr_over_kind_registry=ratio)
        keep()
        print(f"| lab on kind, `--registry=ecr` (moto) | {_spread(ecr['ecr'])} |")
        print(f"| lab on kind, kind's registry | {_spread(ecr['kind_registry'])} |")
        goal = GOALS["lab_ecr_over_kind_registry"]
        print(f"\nlab ECR / kind registry (medians) = {ratio:.2f} (goal <= {goal})")
        if ratio > goal:
            missed.append("lab ECR/kind registry")
    print(f"\nraw data: {out.relative_to(ROOT)}")
    if missed:
        print(f"missed: {', '.join(missed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(interruptible(main, "kind_node"))
