"""`probelab predict MANIFEST`: kubelet's timeline for a manifest, without a cluster."""

import argparse
import sys
from pathlib import Path
from typing import Any

from probelab.commands import Subparsers
from probelab.errors import ProbelabError
from probelab.model.app import app_for
from probelab.model.rules import Kubelet
from probelab.predict import model_errors, predict
from probelab.validation import check_manifest


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """What `predict` and `observe` share: the manifest, the window, the format."""
    parser.add_argument("manifest", type=Path, help="a Pod, or a workload with a pod template")
    parser.add_argument(
        "--duration",
        type=float,
        default=120.0,
        help="seconds after the first container start (default 120)",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")


def register(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "predict",
        help="when kubelet will probe, kill, restart and back off, from the manifest alone",
        description=(
            "Model kubelet's probe workers and restart back-off for every container. The "
            "lab image's behaviour comes from its env knobs; describe any other image's "
            "with the options below (they apply to every container)."
        ),
    )
    add_output_options(parser)
    app = parser.add_argument_group("what the app does (other images; overrides lab knobs)")
    app.add_argument("--boot", type=float, help="seconds from start until its ports accept")
    app.add_argument("--listens", help="the ports it listens on, e.g. 8080,9090")
    app.add_argument(
        "--serves",
        action="append",
        metavar="PATH=STATUS",
        help="an HTTP path and its status (repeat); other paths then answer 404",
    )
    app.add_argument("--health-path", help="the path --fail-after and --health-delay affect")
    app.add_argument("--fail-after", type=float, help="the health path fails after this long")
    app.add_argument("--health-delay", type=float, help="the health path answers this late")
    app.add_argument("--ignores-sigterm", action="store_true", help="only SIGKILL stops it")
    app.add_argument("--exits-after", type=float, help="the process ends by itself then")
    app.add_argument("--exec-fails", action="store_true", help="exec probe commands fail")
    app.add_argument(
        "--grpc-serving", action="store_true", help="it answers gRPC health checks with SERVING"
    )
    app.add_argument("--dependency-down", action="store_true", help="readiness' dependency")
    node = parser.add_argument_group("the node")
    node.add_argument(
        "--kubelet-version", default="1.35", help="default 1.35 (rules read for 1.33-1.36)"
    )
    node.add_argument(
        "--reduced-backoff",
        action="store_true",
        help="feature gate ReduceDefaultCrashLoopBackOffDecay (1 s to 60 s)",
    )
    node.add_argument(
        "--max-restart-period",
        type=float,
        help="kubelet crashLoopBackOff.maxContainerRestartPeriod, seconds",
    )
    odds = parser.add_argument_group("odds")
    odds.add_argument(
        "--samples",
        type=int,
        default=0,
        help="sample kubelet's randomness N times: spread and distinct paths with their odds",
    )
    odds.add_argument("--seed", type=int, default=0, help="random seed for --samples (default 0)")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when the model had to assume anything"
    )
    parser.set_defaults(run=_run)


def kubelet_from(args: argparse.Namespace) -> Kubelet:
    with model_errors():
        return Kubelet.parse(
            args.kubelet_version,
            reduced_decay=args.reduced_backoff,
            max_restart=args.max_restart_period,
        )


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """App fields the user set explicitly; the rest come from the image or defaults."""
    fields: dict[str, Any] = {}
    if args.boot is not None:
        fields["boot"] = args.boot
    if args.listens:
        fields["listens"] = frozenset(_port(p) for p in args.listens.split(","))
    if args.serves:
        fields["statuses"] = dict(_path_status(item) for item in args.serves)
        fields["default_status"] = 404
    if args.health_path:
        fields["health_path"] = args.health_path
    elif args.fail_after is not None or args.health_delay is not None:
        fields["health_path"] = "/healthz"
    if args.fail_after is not None:
        fields["fail_after"] = args.fail_after
    if args.health_delay is not None:
        fields["health_delay"] = args.health_delay
    if args.ignores_sigterm:
        fields["ignores_sigterm"] = True
    if args.exits_after is not None:
        fields["exits_after"] = args.exits_after
    if args.exec_fails:
        fields["exec_ok"] = False
    if args.grpc_serving:
        fields["grpc_ok"] = True
    if args.dependency_down:
        fields["ready_ok"] = False
    return fields


def _port(text: str) -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= 65535:
        raise ProbelabError(f"--listens takes port numbers 1-65535, got {text!r}")
    return int(text)


def _path_status(item: str) -> tuple[str, int]:
    path, _, status = item.rpartition("=")  # a path may carry a query with its own "="
    if not path.startswith("/") or not status.isdigit() or not 100 <= int(status) <= 599:
        raise ProbelabError(f"--serves takes PATH=STATUS like /healthz=200, got {item!r}")
    return path, int(status)


def _seconds(name: str, value: float | None) -> None:
    if value is not None and not 0 <= value <= 86_400:  # also refuses nan
        raise ProbelabError(f"{name} must be between 0 and 86400 seconds, got {value:g}")


def _run(args: argparse.Namespace) -> int:
    kubelet = kubelet_from(args)  # the release first: its schema checks the manifest
    check_manifest(args.manifest, version=args.kubelet_version)
    for name in ("boot", "fail_after", "health_delay", "exits_after", "max_restart_period"):
        _seconds("--" + name.replace("_", "-"), getattr(args, name))
    result = predict(
        args.manifest,
        duration=args.duration,
        kubelet=kubelet,
        apps=app_for(**overrides_from(args)),
        samples=args.samples,
        seed=args.seed,
    )
    print(result.render(args.format))
    if args.strict and result.assumptions():
        count = len(result.assumptions())
        print(
            f"predict --strict: the model assumed {count} thing(s) (see 'assumed')", file=sys.stderr
        )
        return 1
    return 0
