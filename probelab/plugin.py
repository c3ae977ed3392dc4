"""pytest plugin (placeholder until the harness fixtures land)."""
