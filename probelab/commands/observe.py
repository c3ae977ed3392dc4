"""`probelab observe MANIFEST`: what kubelet really does with it, in predict's schema."""

import argparse
from pathlib import Path

from probelab.commands import Subparsers
from probelab.commands.predict import add_output_options
from probelab.local_target import local_target
from probelab.observe import observe
from probelab.predict import checked_duration, read_pods
from probelab.validation import check_manifest

APP_DIR = Path(__file__).resolve().parents[2] / "app"


def register(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "observe",
        help="run the manifest in a fresh namespace and record what kubelet does",
        description=(
            "Apply the manifest's pods in a new namespace of the local cluster, record "
            "pods and events for --duration seconds after the first container start, "
            "delete the namespace and print the same schema as `probelab predict`."
        ),
    )
    add_output_options(parser)
    parser.add_argument(
        "--cluster",
        choices=("local",),
        default="local",
        help="where to run it: the local cluster (it brings the registry the image needs)",
    )
    parser.add_argument("--namespace-prefix", default="probelab-observe")
    parser.add_argument("--app-dir", type=Path, default=APP_DIR, help="the lab image's source")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    check_manifest(args.manifest)  # bad input fails here, before any build
    read_pods(args.manifest)
    checked_duration(args.duration)
    target = local_target(args.app_dir)
    try:
        result = observe(
            target.api,
            args.manifest,
            duration=args.duration,
            image=target.image,
            registry=target.registry,
            namespace_prefix=args.namespace_prefix,
            runtime_log=target.cluster.runtime_log,
        )
    finally:
        target.api.close()
    print(result.render(args.format))
    return 0
