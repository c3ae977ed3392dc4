"""Mounts left under a directory that is about to go: the local cluster's state (kubelet's
volumes) and a debootstrap root stopped halfway (its /proc, /sys and /dev binds)."""

import subprocess
from pathlib import Path


def unmount_below(root: Path) -> None:
    """Unmount whatever is still mounted under `root`, deepest first."""
    prefix = str(root.resolve()) + "/"
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", mount], capture_output=True, check=False)
