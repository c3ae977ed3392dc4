"""Ways of getting a Kubernetes cluster to run the probe lab against."""
