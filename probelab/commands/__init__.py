"""Subcommands of `probelab`, one module each, each with a `register(subparsers)`."""

import argparse

Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]  # what add_subparsers returns
