"""`probelab doctor`: check this machine for the lab; every shortcoming comes with its fix."""

import argparse
from pathlib import Path

from probelab import clusters, doctor
from probelab.commands import Subparsers


def register(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "doctor", help="check Docker, kind, kubectl, cgroups, disk and the cluster; say the fixes"
    )
    parser.add_argument("--cluster", choices=clusters.CHOICES, default="auto")
    parser.add_argument("--kube-context", default=None, help="context for --cluster=existing")
    parser.add_argument("--kubeconfig", type=Path, default=None, help="for --cluster=existing")
    parser.add_argument(
        "--min-free-gib",
        type=float,
        default=None,
        help="free disk the lab needs (default: what the local cluster asks for)",
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    target = doctor.Target(clusters.choose(args.cluster), args.kubeconfig, args.kube_context)
    findings = doctor.examine(target, min_free_gib=args.min_free_gib)
    for finding in findings:
        print(finding.render())
    return 1 if doctor.failed(findings) else 0
