"""Subcommands of `probelab`, one module each, each with a `register(subparsers)`."""

import argparse
from typing import TypeAlias

# What `add_subparsers` returns; a string because the class is generic only to type checkers.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
