"""Upstream Kubernetes' own probe specs (e2e.test), run against probelab's clusters."""
