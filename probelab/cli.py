"""The `probelab` command.

Every failure the user can act on ends as one line on stderr and a non-zero exit;
tracebacks are kept for real bugs.
"""

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from probelab.commands import (
    Subparsers,
    cluster,
    conformance,
    diagnose,
    doctor,
    lint,
    observe,
    predict,
    verify,
)
from probelab.errors import ProbelabError
from probelab.i18n import LANGUAGES, _, set_language
from probelab.secrets import SECRETS, install_log_masking

# Each subcommand lives in its own module under probelab/commands and adds its parser here.
COMMANDS: tuple[Callable[[Subparsers], None], ...] = (
    cluster.register,
    predict.register,
    observe.register,
    diagnose.register,
    lint.register,
    verify.register,
    doctor.register,
    conformance.register,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="probelab", description="Kubernetes probe labs as tests against real clusters."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--lang",
        choices=LANGUAGES,
        default=None,
        help="language of what probelab tells you (default: Korean in a ko* locale, else English)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for register in COMMANDS:
        register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    install_log_masking()
    set_language(args.lang)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except ProbelabError as error:
        print(f"probelab: {SECRETS.mask(str(error))}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("probelab: " + _("interrupted"), file=sys.stderr)
        return 130
    except BrokenPipeError:  # `probelab ... | head` closed the pipe: nothing more to say
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - flushing at exit must not fail
        return 0


if __name__ == "__main__":
    sys.exit(main())
