"""Go toolchains from the module proxy: which Go is used, the zip's hash, the download.

The download runs against a real HTTP server playing the module proxy (its version list,
the zip, the checksum database's lookup), so nothing leaves the machine.
"""

import http.server
import io
import os
import stat
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from probelab.clusters.local import toolchain
from probelab.clusters.local.toolchain import Toolchains
from probelab.errors import ProbelabError

# golang.org/x/mod/sumdb/dirhash.HashZip(zip of these files, dirhash.Hash1), run with Go.
FILES = {
    "example.com/m@v1.0.0/go.mod": "module example.com/m\n",
    "example.com/m@v1.0.0/bin/go": "#!/bin/sh\necho go\n",
    "example.com/m@v1.0.0/a.txt": "probelab\n",
}
GO_DIRHASH = "h1:3OVzvIpzzz8kou/pTxWYK6bzbAy/y97pdnyGNOsf51A="
# sum.golang.org's answer for go1.25.0 on linux-amd64, as the proxy relays it.
LOOKUP = """\
golang.org/toolchain v0.0.1-go1.25.0.linux-amd64 h1:wVC9wx2XOcP5gHiN8ZzfyTfjlrDLSS7Hu1wjI01n68U=

go.sum database tree
66332798
czPocWFmMwQrSENohgEPvFiqA+2i/3lRZhHbxtma2UQ=
"""
GO_SCRIPT = "#!/bin/sh\n[ \"$1 $2\" = 'env GOVERSION' ] && echo {version}\n"


def zip_of(files: dict[str, str], modes: dict[str, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (modes or {}).get(name, 0o644) << 16
            archive.writestr(info, text)
    return buffer.getvalue()


def test_zip_hash_is_gos_dirhash() -> None:
    with zipfile.ZipFile(io.BytesIO(zip_of(FILES))) as archive:
        assert toolchain.zip_hash(archive) == GO_DIRHASH


def test_recorded_hash_is_read_from_the_lookup() -> None:
    version = "v0.0.1-go1.25.0.linux-amd64"
    assert toolchain.recorded_hash(LOOKUP, version) == (
        "h1:wVC9wx2XOcP5gHiN8ZzfyTfjlrDLSS7Hu1wjI01n68U="
    )
    with pytest.raises(ProbelabError, match=r"no hash for golang\.org/toolchain@v0\.0\.1-go1\.26"):
        toolchain.recorded_hash(LOOKUP, "v0.0.1-go1.26.0.linux-amd64")


def test_newest_release_is_stable_and_of_this_platform() -> None:
    listing = "\n".join(
        [
            "v0.0.1-go1.9.7.linux-amd64",
            "v0.0.1-go1.26.8.linux-amd64",
            "v0.0.1-go1.27rc1.linux-amd64",
            "v0.0.1-go1.27.0.linux-arm64",
            "v0.0.1-go1.26.10.linux-amd64",
            "v0.0.1-go1.21.0.windows-amd64",
        ]
    )
    assert toolchain.newest_release(listing, "linux-amd64") == "1.26.10"
    assert toolchain.newest_release(listing, "linux-riscv64") is None


@pytest.mark.parametrize(
    ("setting", "proxy"),
    [
        (None, "https://proxy.golang.org"),
        ("https://a.example/,https://b.example", "https://a.example"),
        ("direct|https://c.example", "https://c.example"),
    ],
)
def test_proxy_is_the_first_of_goproxy(
    monkeypatch: pytest.MonkeyPatch, setting: str | None, proxy: str
) -> None:
    if setting is None:
        monkeypatch.delenv("GOPROXY", raising=False)
    else:
        monkeypatch.setenv("GOPROXY", setting)
    assert toolchain.proxy_url() == proxy


@pytest.mark.parametrize("setting", ["off", "direct"])
def test_no_proxy_means_no_toolchain(monkeypatch: pytest.MonkeyPatch, setting: str) -> None:
    monkeypatch.setenv("GOPROXY", setting)
    with pytest.raises(ProbelabError, match=f"^GOPROXY={setting} names no module proxy"):
        toolchain.proxy_url()


def fake_go(directory: Path, version: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    go = directory / "go"
    go.write_text(GO_SCRIPT.format(version=version))
    go.chmod(0o755)
    return go


def test_go_on_path_is_used_while_new_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_path = fake_go(tmp_path / "bin", "go1.26.8")
    cached = fake_go(tmp_path / "cache" / "go1.27.4" / "bin", "go1.27.4")
    monkeypatch.setenv("PATH", str(on_path.parent))
    toolchains = Toolchains(tmp_path / "cache")

    assert toolchains.go_for("1.26.0") == str(on_path)
    assert toolchains.go_for("1.27") == str(cached)  # too old now: the cache's newer one


def test_too_old_everywhere_means_a_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_go(tmp_path / "bin", "go1.19.8")  # Debian 12's
    fake_go(tmp_path / "cache" / "go1.24.0" / "bin", "go1.24.0")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("GOPROXY", "http://127.0.0.1:9")  # nothing listens: the fetch fails

    with pytest.raises(ProbelabError, match=r"^fetching http://127\.0\.0\.1:9/golang\.org/"):
        Toolchains(tmp_path / "cache").go_for("1.25.0")


class FakeProxy(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A module proxy on localhost serving `<root>/...` as files."""
    root = tmp_path / "proxy"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: FakeProxy(*a, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("GOPROXY", f"http://127.0.0.1:{server.server_address[1]},direct")
    monkeypatch.delenv("GOSUMDB", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(toolchain, "platform_suffix", lambda: "linux-amd64")
    yield root
    server.shutdown()
    server.server_close()


def publish(root: Path, release: str, recorded: str | None = None) -> None:
    """Put go`release` on the fake proxy, with its hash (or `recorded`) in the lookup."""
    version = f"v0.0.1-go{release}.linux-amd64"
    prefix = f"golang.org/toolchain@{version}/"
    files = {f"{prefix}bin/go": GO_SCRIPT.format(version=f"go{release}"), f"{prefix}VERSION": ""}
    data = zip_of(files, {f"{prefix}bin/go": 0o755})
    module = root / "golang.org" / "toolchain" / "@v"
    module.mkdir(parents=True, exist_ok=True)
    (module / f"{version}.zip").write_bytes(data)
    with (module / "list").open("a") as listing:
        listing.write(f"{version}\n")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        line = f"golang.org/toolchain {version} {recorded or toolchain.zip_hash(archive)}\n"
    lookup = root / "sumdb" / "sum.golang.org" / "lookup" / "golang.org" / f"toolchain@{version}"
    lookup.parent.mkdir(parents=True, exist_ok=True)
    lookup.write_text(line + "\ngo.sum database tree\n1\nx\n")


def test_download_takes_the_newest_checks_its_hash_and_keeps_exec_bits(
    proxy: Path, tmp_path: Path, progress_lines: io.StringIO
) -> None:
    publish(proxy, "1.25.3")
    publish(proxy, "1.26.2")
    go = Toolchains(tmp_path / "cache").go_for("1.25.0")

    assert go == str(tmp_path / "cache" / "go1.26.2" / "bin" / "go")
    assert os.stat(go).st_mode & stat.S_IXUSR
    assert toolchain.local_version(go) == "go1.26.2"
    said = " ".join(progress_lines.getvalue().split())
    assert "there is no `go` on PATH; fetching go1.26.2 as the module " in said
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["go1.26.2"]  # no leftovers


def test_two_threads_wanting_go_at_once_download_it_once(
    proxy: Path, tmp_path: Path, progress_lines: io.StringIO
) -> None:
    """The side builds beside Kubernetes ask for Go at the same moment as the Kubernetes
    build: one fetches it, the other waits and takes it from the cache."""
    publish(proxy, "1.26.2")
    toolchains = Toolchains(tmp_path / "cache")
    gos: list[str] = []
    threads = [
        threading.Thread(target=lambda: gos.append(toolchains.go_for("1.25.0"))) for _ in "ab"
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert gos == [str(tmp_path / "cache" / "go1.26.2" / "bin" / "go")] * 2
    said = progress_lines.getvalue()
    assert said.count("fetching go1.26.2") == 1
    assert said.count("Go: using go1.26.2 from probelab's cache") == 1


def test_download_with_a_wrong_hash_is_refused(proxy: Path, tmp_path: Path) -> None:
    publish(proxy, "1.26.2", recorded="h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    with pytest.raises(ProbelabError, match=r"hashes to h1:.*but sum\.golang\.org records"):
        Toolchains(tmp_path / "cache").go_for("1.25.0")
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []


def test_unpack_refuses_paths_outside_the_target(tmp_path: Path) -> None:
    data = zip_of({"golang.org/toolchain@v/../../evil": "x"})
    with (
        zipfile.ZipFile(io.BytesIO(data)) as archive,
        pytest.raises(ProbelabError, match="unsafe path"),
    ):
        toolchain._unpack(archive, "golang.org/toolchain@v/", tmp_path / "out")
