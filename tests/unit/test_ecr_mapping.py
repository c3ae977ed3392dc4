"""The pieces the ECR stand-in changes on the machine, each on scratch files and ports.

The whole mapping runs on the real machine in tests/integration/test_ecr_flow.py; here the
hosts-file edit, the one-session lock and the TLS forwarder are checked on their own.
"""

import asyncio
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from probelab.errors import ProbelabError
from probelab.registries.ecr_mapping import set_hosts_entry, take_lock, unless_a_session_runs
from probelab.registries.tls_forwarder import TlsForwarder, self_signed

HOST = "123456789012.dkr.ecr.ap-northeast-2.amazonaws.com"


def test_hosts_entry_is_added_replaced_and_removed_leaving_other_lines(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    original = "127.0.0.1 localhost\n# a comment naming " + HOST + "\n"
    hosts.write_text(original)

    set_hosts_entry(hosts, HOST, "127.0.0.44")
    set_hosts_entry(hosts, HOST, "127.0.0.45")
    lines = hosts.read_text().splitlines()
    assert lines[:2] == original.splitlines()
    assert [line.split()[:2] for line in lines[2:]] == [["127.0.0.45", HOST]]

    set_hosts_entry(hosts, HOST, None)
    assert hosts.read_text() == original


def test_second_session_waits_then_names_the_holder(tmp_path: Path) -> None:
    lock = tmp_path / "stand-in.lock"
    first = take_lock(lock, wait=1)
    try:
        with pytest.raises(ProbelabError, match=rf"\(pid {os.getpid()}\) still runs after 1s"):
            take_lock(lock, wait=1)
    finally:
        os.close(first)
    os.close(take_lock(lock, wait=1))  # free again once the first is released


class EchoServer:
    """A TLS server for `localhost` that sends back what it receives."""

    def __init__(self, tmp_path: Path) -> None:
        certificate, key = self_signed("localhost")
        self.ca = tmp_path / "upstream.crt"
        self.ca.write_bytes(certificate)
        (tmp_path / "upstream.key").write_bytes(key)
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(self.ca, tmp_path / "upstream.key")
        self.loop = asyncio.new_event_loop()
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._echo, "127.0.0.1", 0, ssl=self.tls)
        )
        self.port = self.server.sockets[0].getsockname()[1]
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def _echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture
def echo(tmp_path: Path) -> Iterator[EchoServer]:
    server = EchoServer(tmp_path)
    yield server
    server.stop()


@contextmanager
def _tls(forwarder: TlsForwarder, name: str) -> Iterator[ssl.SSLSocket]:
    """A TLS connection to the forwarder for `name`, trusting only its certificate."""
    trusted = ssl.create_default_context(cadata=forwarder.certificate.decode())
    with (
        socket.create_connection(("127.0.0.1", forwarder.port), timeout=10) as raw,
        trusted.wrap_socket(raw, server_hostname=name) as tls,
    ):
        yield tls


def test_leftovers_are_cleared_only_while_no_session_holds_the_lock(tmp_path: Path) -> None:
    lock, done = tmp_path / "lock", []
    session = take_lock(lock, wait=1)
    try:
        assert unless_a_session_runs(lambda: done.append("cleared"), lock) is False
    finally:
        os.close(session)
    assert unless_a_session_runs(lambda: done.append("cleared"), lock) is True
    assert unless_a_session_runs(done.clear, tmp_path / "missing" / "lock") is False
    assert done == ["cleared"]


def test_forwarder_serves_the_name_and_passes_bytes_through(
    echo: EchoServer, tmp_path: Path
) -> None:
    forwarder = TlsForwarder(HOST, ("127.0.0.1", 0), f"localhost:{echo.port}", echo.ca).start()
    try:
        with _tls(forwarder, HOST) as tls:
            tls.sendall(b"GET /v2/ HTTP/1.1\r\n")
            assert tls.recv(1024) == b"GET /v2/ HTTP/1.1\r\n"
        # The certificate is for the ECR host only: any other name fails verification.
        with pytest.raises(ssl.SSLCertVerificationError), _tls(forwarder, "other.example"):
            pass
    finally:
        forwarder.stop()


def test_forwarder_port_in_use_is_one_clear_line(echo: EchoServer) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        forwarder = TlsForwarder(HOST, ("127.0.0.1", port), f"localhost:{echo.port}", echo.ca)
        with pytest.raises(ProbelabError, match=rf"cannot serve {HOST} on 127.0.0.1:{port}"):
            forwarder.start()


def test_forwarder_passes_bytes_to_a_plain_upstream() -> None:
    """kind's registry speaks plain HTTP on loopback: TLS ends at the forwarder."""
    with socket.socket() as upstream:
        upstream.bind(("127.0.0.1", 0))
        upstream.listen()
        port = upstream.getsockname()[1]
        forwarder = TlsForwarder(HOST, ("127.0.0.1", 0), f"127.0.0.1:{port}", None).start()
        try:
            with _tls(forwarder, HOST) as tls:
                tls.sendall(b"GET /v2/ HTTP/1.1\r\n")
                accepted, _ = upstream.accept()
                with accepted:
                    accepted.settimeout(10)
                    assert accepted.recv(1024) == b"GET /v2/ HTTP/1.1\r\n"  # not TLS
                    accepted.sendall(b"HTTP/1.1 401 Unauthorized\r\n")
                    assert tls.recv(1024) == b"HTTP/1.1 401 Unauthorized\r\n"
        finally:
            forwarder.stop()
