"""`probelab cluster up | down | status`: the local upstream Kubernetes cluster."""

import argparse

from probelab.clusters.local.cluster import LocalCluster, purge
from probelab.commands import Subparsers
from probelab.progress import say


def register(commands: Subparsers) -> None:
    cluster = commands.add_parser("cluster", help="the local upstream Kubernetes cluster")
    actions = cluster.add_subparsers(dest="action", required=True)
    actions.add_parser("up", help="build if needed and start every component").set_defaults(run=_up)
    down = actions.add_parser("down", help="stop every component `up` started")
    down.add_argument("--purge", action="store_true", help="also delete the state directory")
    down.set_defaults(run=_down)
    actions.add_parser("status", help="each component's PID and log").set_defaults(run=_status)


def _up(args: argparse.Namespace) -> int:
    LocalCluster().up()
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
        print(f"up: KUBECONFIG={cluster.layout.kubeconfig}")
        return 0
    print(f"not up: {running}/{len(statuses)} components running")
    return 1
