"""`probelab diagnose POD -n NS`: why a pod keeps restarting, and the fix, read-only."""

import argparse
import json
from pathlib import Path

from probelab import kube
from probelab.clusters.local.cluster import LocalCluster
from probelab.commands import Subparsers
from probelab.diagnose import diagnose, gather, report
from probelab.secrets import SECRETS


def register(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "diagnose",
        help="the cause of a pod's probe failures and restarts, and the fix",
        description=(
            "Reads the pod, its events and its logs (get/list/logs only), then names the "
            "cause in one sentence and prints the fix as a patch of the pod's manifest. "
            "Without --kube-context it asks probelab's local cluster; it never falls back "
            "on your current context."
        ),
    )
    parser.add_argument("pod")
    parser.add_argument("-n", "--namespace", required=True)
    parser.add_argument("--kube-context", help="the cluster's context in --kubeconfig")
    parser.add_argument("--kubeconfig", type=Path, help="default: the usual kubeconfig")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    if args.kube_context:
        kubeconfig, context = args.kubeconfig, args.kube_context
    else:
        local = LocalCluster()
        kubeconfig, context = local.layout.kubeconfig, local.config.context
    api = kube.api_client(kubeconfig, context)
    try:
        kube.check_reachable(api)
        evidence = gather(api, args.namespace, args.pod)
    finally:
        api.close()
    cause = diagnose(evidence)
    if args.format == "json":
        body = {
            "pod": args.pod,
            "namespace": args.namespace,
            "cause": {
                "kind": cause.kind,
                "sentence": cause.sentence,
                "container": cause.container,
                "fix": cause.fix,
                "patch": cause.patch(),
            },
        }
        print(SECRETS.mask(json.dumps(body, indent=2)))
    else:
        print(SECRETS.mask(report(evidence, cause)))
    return 0
