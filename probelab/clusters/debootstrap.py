"""Debian root filesystems made with debootstrap, cached as tarballs by recipe.

No image registry is reachable from here, so every base image probelab needs (the lab's
Python base, the kind node's root) is made from the machine's own Debian mirror instead.
debootstrap waits mostly on the mirror and the disk, so a caller may run it in a thread
beside CPU-bound work and stop it (`stop`) when that work fails or is interrupted.
"""

import hashlib
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from probelab.alongside import run_stoppable
from probelab.clusters.mounts import unmount_below
from probelab.errors import ProbelabError
from probelab.progress import step

DEBIAN_SUITE = "bookworm"


def debian_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this machine's apt uses (debootstrap must use the same one)."""
    texts = [p.read_text() for p in sorted(sources_dir.glob("sources.list.d/*.sources"))]
    texts += [p.read_text() for p in [sources_dir / "sources.list"] if p.exists()]
    texts += [p.read_text() for p in sorted(sources_dir.glob("sources.list.d/*.list"))]
    for text in texts:
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.MULTILINE)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.MULTILINE)
            if uris and suites and DEBIAN_SUITE in suites.group(1).split():
                return uris.group(1)
        line = re.search(rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{DEBIAN_SUITE}\s", text, re.MULTILINE)
        if line:
            return line.group(1)
    raise ProbelabError(
        f"no apt source for Debian {DEBIAN_SUITE} found under {sources_dir}; base images "
        "are made with debootstrap from the machine's Debian mirror"
    )


def rootfs_tarball(
    cache_dir: Path,
    name: str,
    packages: Sequence[str],
    *,
    what: str,
    recipe_extra: str = "",
    finish: Callable[[Path], None] | None = None,
    stop: threading.Event | None = None,
) -> Path:
    """A minbase `DEBIAN_SUITE` root with `packages`, tarred; made once per recipe.

    `finish` may change the root before it is packed (its effect belongs in `recipe_extra`).
    `stop`, once set, ends debootstrap and leaves nothing behind (`alongside.Stopped`).
    """
    recipe = f"{DEBIAN_SUITE} {' '.join(packages)} {recipe_extra}".rstrip()
    tarball = cache_dir / f"{name}-{hashlib.sha256(recipe.encode()).hexdigest()[:16]}.tar"
    if tarball.exists():
        return tarball
    if shutil.which("debootstrap") is None:
        raise ProbelabError("`debootstrap` is missing; install Debian's debootstrap package")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as work, step(what):
        root = Path(work) / "rootfs"
        argv = ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}"]
        try:
            code, out, err = run_stoppable([*argv, DEBIAN_SUITE, str(root), debian_mirror()], stop)
        finally:  # a debootstrap that did not finish leaves its /proc, /sys and /dev mounted
            unmount_below(Path(work))
        if code != 0:
            tail = "\n".join(out.strip().splitlines()[-15:])
            raise ProbelabError(f"debootstrap failed:\n{tail}\n{err.strip()}")
        if finish is not None:
            finish(root)
        for leftover in ("var/lib/apt/lists", "var/cache/apt/archives"):
            shutil.rmtree(root / leftover, ignore_errors=True)
        partial = tarball.with_suffix(".partial")
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."], check=True
        )
        partial.rename(tarball)
    return tarball
