"""A Go toolchain new enough for the build, fetched from the Go module proxy when needed.

Go publishes every release as the module `golang.org/toolchain@v0.0.1-go1.X.Y.GOOS-GOARCH`
and its own GOTOOLCHAIN switching downloads it from the module proxy. probelab does the
same when `go` is missing or older than a module needs (Debian 12's Go is 1.19), so the
module proxy stays the only thing the build reaches: the zip is checked against its
`h1:` hash from the checksum database (through the proxy, as `go` asks it), then unpacked
into probelab's cache. It takes the newest release rather than exactly the `go` line, so
one download serves Kubernetes, etcd and CoreDNS of every supported version, and a cached
toolchain is reused while it is new enough.
"""

from __future__ import annotations

import base64
import hashlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from probelab.errors import ProbelabError
from probelab.locks import exclusive
from probelab.progress import say, step

MODULE = "golang.org/toolchain"
_DEFAULT_PROXY = "https://proxy.golang.org"
_DEFAULT_SUMDB = "sum.golang.org"
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
_TIMEOUT = 60.0


def version_tuple(version: str) -> tuple[int, ...]:
    """`go1.26.8`, `1.26.0` or `1.26` as numbers, for comparing."""
    match = re.match(r"(?:go)?(\d+(?:\.\d+)*)", version.strip())
    if match is None:
        raise ProbelabError(f"not a Go version: {version!r}")
    return tuple(int(part) for part in match.group(1).split("."))


def proxy_url() -> str:
    """The first HTTP(S) proxy of GOPROXY, as `go` would try it first."""
    setting = os.environ.get("GOPROXY") or _DEFAULT_PROXY
    for entry in re.split(r"[,|]", setting):
        if entry.startswith(("https://", "http://")):
            return entry.rstrip("/")
    raise ProbelabError(
        f"GOPROXY={setting} names no module proxy, so no Go toolchain can be fetched; "
        "install Go or set GOPROXY"
    )


def platform_suffix() -> str:
    arch = _ARCH.get(platform.machine().lower())
    if arch is None or not platform.system() == "Linux":
        raise ProbelabError(
            f"no Go toolchain is fetched for {platform.system()}/{platform.machine()}; install Go"
        )
    return f"linux-{arch}"


def newest_release(listing: str, suffix: str) -> str | None:
    """The newest stable Go in the proxy's version list of the toolchain module."""
    pattern = re.compile(rf"v0\.0\.1-go(\d+\.\d+(?:\.\d+)?)\.{re.escape(suffix)}")
    stable = [m.group(1) for line in listing.split() if (m := pattern.fullmatch(line))]
    return max(stable, key=version_tuple, default=None)


def zip_hash(archive: zipfile.ZipFile) -> str:
    """The module zip's `h1:` hash, as go.sum and the checksum database record it: SHA-256
    over the sorted lines `<sha256 of file>  <name>`."""
    lines = []
    for name in sorted(archive.namelist()):
        digest = hashlib.sha256(archive.read(name)).hexdigest()
        lines.append(f"{digest}  {name}\n")
    summary = hashlib.sha256("".join(lines).encode()).digest()
    return "h1:" + base64.b64encode(summary).decode()


def recorded_hash(lookup: str, version: str) -> str:
    """The zip's hash from a checksum database lookup answer."""
    for line in lookup.splitlines():
        parts = line.split()
        if parts[:2] == [MODULE, version] and len(parts) == 3:
            return parts[2]
    raise ProbelabError(f"the checksum database has no hash for {MODULE}@{version}")


def local_version(go: str) -> str | None:
    """`go env GOVERSION` of a `go` binary, or None when it cannot say (too old, broken)."""
    result = subprocess.run(
        [go, "env", "GOVERSION"],
        env={**os.environ, "GOTOOLCHAIN": "local"},
        capture_output=True,
        text=True,
        check=False,
    )
    version = result.stdout.strip()
    return version if result.returncode == 0 and version.startswith("go") else None


class Toolchains:
    """Go toolchains in probelab's cache: `<root>/go1.X.Y/bin/go`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def go_for(self, needed: str) -> str:
        """A `go` at least `needed`: the one on PATH, else a cached one, else a download."""
        on_path = shutil.which("go")
        have = local_version(on_path) if on_path else None
        if on_path and have and version_tuple(have) >= version_tuple(needed):
            return on_path
        why = f"`go` on PATH is {have}" if have else "there is no `go` on PATH"
        # Two builds at once (threads or processes) that both lack a `go` take turns, and
        # the second one finds the first one's download instead of fetching it again.
        lock = self.root.with_name(f"{self.root.name}.lock")
        with exclusive(lock, "waiting for a Go toolchain download under way"):
            cached = self._cached(needed)
            if cached is not None:
                say(f"Go: using {cached.parent.parent.name} from probelab's cache ({why})")
                return str(cached)
            return str(self._download(needed, why))

    def _cached(self, needed: str) -> Path | None:
        if not self.root.is_dir():
            return None
        found = [
            d
            for d in self.root.iterdir()
            if d.name.startswith("go") and (d / "bin" / "go").is_file()
        ]
        new_enough = [d for d in found if version_tuple(d.name) >= version_tuple(needed)]
        best = max(new_enough, key=lambda d: version_tuple(d.name), default=None)
        return None if best is None else best / "bin" / "go"

    def _download(self, needed: str, why: str) -> Path:
        proxy, suffix = proxy_url(), platform_suffix()
        release = newest_release(_get(f"{proxy}/{MODULE}/@v/list").decode(), suffix)
        if release is None or version_tuple(release) < version_tuple(needed):
            raise ProbelabError(
                f"the module proxy {proxy} lists no Go toolchain {needed} or newer for {suffix}"
            )
        version = f"v0.0.1-go{release}.{suffix}"
        target = self.root / f"go{release}"
        say(
            f"Go: the build needs Go {needed} or newer and {why}; fetching go{release} "
            f"as the module {MODULE}@{version} into {target}"
        )
        self.root.mkdir(parents=True, exist_ok=True)
        with (
            step(f"downloading Go {release} from the Go module proxy"),
            tempfile.TemporaryDirectory(dir=self.root, prefix=".download-") as scratch,
        ):
            archive_path = Path(scratch) / "toolchain.zip"
            archive_path.write_bytes(_get(f"{proxy}/{MODULE}/@v/{version}.zip"))
            with zipfile.ZipFile(archive_path) as archive:
                self._verify(archive, proxy, version)
                unpacked = Path(scratch) / "go"
                _unpack(archive, f"{MODULE}@{version}/", unpacked)
            if not (unpacked / "bin" / "go").is_file():
                raise ProbelabError(f"{MODULE}@{version} has no bin/go")
            if target.exists():  # a half-finished earlier attempt
                shutil.rmtree(target)
            unpacked.rename(target)
        return target / "bin" / "go"

    def _verify(self, archive: zipfile.ZipFile, proxy: str, version: str) -> None:
        """Refuse a zip whose hash differs from the checksum database's (GOSUMDB=off: skip)."""
        sumdb = (os.environ.get("GOSUMDB") or _DEFAULT_SUMDB).split("+", 1)[0].split()[0]
        if sumdb == "off":
            say("Go: GOSUMDB=off, so the toolchain's hash is not checked")
            return
        lookup = _get(f"{proxy}/sumdb/{sumdb}/lookup/{MODULE}@{version}").decode()
        expected, actual = recorded_hash(lookup, version), zip_hash(archive)
        if actual != expected:
            raise ProbelabError(
                f"{MODULE}@{version} from {proxy} hashes to {actual}, but {sumdb} records "
                f"{expected}; not using it"
            )


def _unpack(archive: zipfile.ZipFile, prefix: str, target: Path) -> None:
    """Extract the files under `prefix`, keeping their executable bits (zipfile drops them)."""
    for info in archive.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        relative = info.filename[len(prefix) :]
        if relative.startswith("/") or ".." in Path(relative).parts:
            raise ProbelabError(f"unsafe path in the toolchain zip: {info.filename}")
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as source, path.open("wb") as out:
            shutil.copyfileobj(source, out)
        mode = (info.external_attr >> 16) & 0o777
        path.chmod(mode or 0o644)


def _get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT) as response:
            body: bytes = response.read()
            return body
    except (urllib.error.URLError, TimeoutError) as error:
        raise ProbelabError(f"fetching {url} failed: {error}") from None
