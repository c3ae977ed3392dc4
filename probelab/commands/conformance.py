"""`probelab conformance run`: upstream's own probe specs against the local cluster."""

import argparse
from pathlib import Path

from probelab.commands import Subparsers
from probelab.conformance import summary
from probelab.conformance.local import run_on_local
from probelab.conformance.suite import FOCUS
from probelab.errors import ProbelabError
from probelab.i18n import _


def register(commands: Subparsers) -> None:
    conformance = commands.add_parser(
        "conformance", help="upstream Kubernetes' probe specs (e2e.test) on the local cluster"
    )
    actions = conformance.add_subparsers(dest="action", required=True)
    run = actions.add_parser(
        "run",
        help="build e2e.test for the cluster's version, make its images, run the probe specs",
    )
    run.add_argument(
        "--focus",
        action="append",
        metavar="REGEX",
        help="ginkgo focus (repeat); default: both probe Describe blocks",
    )
    run.add_argument("--procs", type=_positive_int, default=2, help="parallel ginkgo processes")
    run.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds for the whole suite (default 3600)"
    )
    run.add_argument(
        "--report-dir",
        type=Path,
        default=Path("reports/conformance"),
        help="where upstream's JUnit and ginkgo's report go (default reports/conformance)",
    )
    run.add_argument(
        "--kube-test-repo-list",
        type=Path,
        metavar="YAML",
        help="upstream's registry mapping for the specs' images (KUBE_TEST_REPO_LIST)",
    )
    run.set_defaults(run=_run)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(
            _("a whole number of at least 1, got {text!r}").format(text=text)
        )
    return int(text)


def _run(args: argparse.Namespace) -> int:
    if args.timeout <= 0:
        raise ProbelabError(_("--timeout must be positive, got {value}").format(value=args.timeout))
    outcome = run_on_local(
        args.report_dir,
        focus=tuple(args.focus or FOCUS),
        procs=args.procs,
        timeout=args.timeout,
        repo_list=args.kube_test_repo_list,
    )
    print(summary.render(outcome))
    return 0 if summary.succeeded(outcome) else 1
