"""probelab: the Kubernetes probe lab as end-to-end tests against real clusters."""

__version__ = "0.1.0"
