"""The `probelab` command.

Every failure the user can act on ends as one line on stderr and a non-zero exit;
tracebacks are kept for real bugs.
"""

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from probelab.clusters.local.cluster import LocalCluster, purge
from probelab.errors import ProbelabError
from probelab.progress import say
from probelab.secrets import SECRETS, install_log_masking


def _cluster_up(args: argparse.Namespace) -> int:
    LocalCluster().up()
    return 0


def _cluster_down(args: argparse.Namespace) -> int:
    cluster = LocalCluster()
    cluster.down()
    if args.purge:
        purge(cluster.config)
        say(f"removed {cluster.layout.root}")
    return 0


def _cluster_status(args: argparse.Namespace) -> int:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="probelab", description="Kubernetes probe labs as tests against real clusters."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    cluster = commands.add_parser("cluster", help="the local upstream Kubernetes cluster")
    actions = cluster.add_subparsers(dest="action", required=True)
    actions.add_parser("up", help="build if needed and start every component").set_defaults(
        run=_cluster_up
    )
    down = actions.add_parser("down", help="stop every component `up` started")
    down.add_argument("--purge", action="store_true", help="also delete the state directory")
    down.set_defaults(run=_cluster_down)
    actions.add_parser("status", help="each component's PID and log").set_defaults(
        run=_cluster_status
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    install_log_masking()
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except ProbelabError as error:
        print(f"probelab: {SECRETS.mask(str(error))}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("probelab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
