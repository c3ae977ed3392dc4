"""Loads the probelab plugin for labs/ and tests/ (when it is not installed as a package)
and pytest's own pytester, which the plugin's tests run pytest with."""

pytest_plugins = ["probelab.plugin", "pytester"]
