"""Loads the probelab plugin for labs/ and tests/ when it is not installed as a package."""

pytest_plugins = ["probelab.plugin"]
