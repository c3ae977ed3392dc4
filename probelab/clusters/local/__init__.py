"""A single-node cluster built from upstream binaries run as local processes."""
