"""`probelab lint MANIFEST...`: probe mistakes found in manifests, each with its fix."""

import argparse
import json
from pathlib import Path

from probelab.commands import Subparsers
from probelab.i18n import _
from probelab.lint import errors, lint
from probelab.validation import check_manifest, check_seconds


def register(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "lint",
        help="check probes against the container and the app; exit 1 on errors",
        description=(
            "Each finding names the manifest, object, container and field, and the change "
            "that fixes it. The lab image's app is known; for others give --startup-time."
        ),
    )
    parser.add_argument("manifests", nargs="+", type=Path, metavar="MANIFEST")
    parser.add_argument(
        "--startup-time",
        type=float,
        help="seconds the app needs before it answers probes (the lab image: from its env)",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    for path in args.manifests:
        check_manifest(path)  # what the API server would refuse is bad input: exit 2
    if args.startup_time is not None:
        check_seconds("--startup-time", args.startup_time)
    findings = [f for path in args.manifests for f in lint(path, startup_time=args.startup_time)]
    if args.format == "json":
        print(json.dumps([f.as_json() for f in findings], indent=2))
    else:
        for finding in findings:
            print(finding.render())
        print(
            _("{findings} finding(s), {errors} error(s)").format(
                findings=len(findings), errors=errors(findings)
            )
        )
    return 1 if errors(findings) else 0
