"""`probelab observe MANIFEST`: what kubelet really does with it, in predict's schema."""

import argparse
from pathlib import Path

from probelab import kube
from probelab.clusters.local.cluster import LocalCluster
from probelab.commands import Subparsers
from probelab.commands.predict import add_output_options
from probelab.errors import ProbelabError
from probelab.images import build_and_push, docker_client
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
    local = LocalCluster()
    if not local.is_up():
        raise ProbelabError("the local cluster is not up; start it with `probelab cluster up`")
    handle = local.handle(owned=False)
    assert handle.registry is not None  # the local cluster always has one
    engine = docker_client(handle.docker_host)
    try:
        image = build_and_push(engine, args.app_dir, handle.registry)
    finally:
        engine.close()
    api = kube.api_client(handle.kubeconfig, handle.context)
    try:
        result = observe(
            api,
            args.manifest,
            duration=args.duration,
            image=image,
            registry=handle.registry,
            namespace_prefix=args.namespace_prefix,
            runtime_log=local.runtime_log,
        )
    finally:
        api.close()
    print(result.render(args.format))
    return 0
