"""`probelab cluster up | build | down | status`: the local upstream Kubernetes cluster."""

import argparse

from probelab.clusters.local import releases
from probelab.clusters.local.cluster import LocalCluster, purge
from probelab.commands import Subparsers
from probelab.progress import say


def _add_version(parser: argparse.ArgumentParser, default_help: str) -> None:
    parser.add_argument(
        "--kubernetes-version",
        metavar="VERSION",
        help=f"a minor ({releases.supported_range()}: its newest patch on the Go module "
        f"proxy) or a patch such as 1.34.2; default ${releases.ENVIRONMENT}, else "
        f"{default_help}",
    )


def register(commands: Subparsers) -> None:
    cluster = commands.add_parser("cluster", help="the local upstream Kubernetes cluster")
    actions = cluster.add_subparsers(dest="action", required=True)
    up = actions.add_parser(
        "up", help="build if needed and start every component (replacing another version)"
    )
    _add_version(up, f"the running version, else {releases.DEFAULT_KUBERNETES}")
    up.set_defaults(run=_up)
    build = actions.add_parser("build", help="only build (or find cached) what `up` runs")
    _add_version(build, releases.DEFAULT_KUBERNETES)
    build.set_defaults(run=_build)
    down = actions.add_parser("down", help="stop every component `up` started")
    down.add_argument("--purge", action="store_true", help="also delete the state directory")
    down.set_defaults(run=_down)
    actions.add_parser("status", help="each component's PID and log").set_defaults(run=_status)


def _up(args: argparse.Namespace) -> int:
    request = releases.requested(args.kubernetes_version)  # bad input: before any work
    LocalCluster().up(request)
    return 0


def _build(args: argparse.Namespace) -> int:
    request = releases.requested(args.kubernetes_version)
    versions, binaries = LocalCluster().build(request)
    say(f"built {versions.describe()}: {binaries.kubernetes}")
    return 0


def _down(args: argparse.Namespace) -> int:
    cluster = LocalCluster()
    cluster.down()
    if args.purge:
        purge(cluster.config)
        say(f"removed {cluster.layout.root}")
    return 0


def _status(args: argparse.Namespace) -> int:
    cluster = LocalCluster()
    statuses = cluster.status()
    print(f"state and logs: {cluster.layout.root}")
    for status in statuses:
        state = f"running (pid {status.pid})" if status.pid else "stopped"
        print(f"  {status.name:<24} {state:<22} {status.log}")
    running = sum(1 for s in statuses if s.pid)
    if running == len(statuses) and cluster.is_up():
        versions = cluster.last_versions()
        what = versions.describe() if versions else "version not recorded"
        print(f"up: {what}; KUBECONFIG={cluster.layout.kubeconfig}")
        return 0
    print(f"not up: {running}/{len(statuses)} components running")
    return 1
