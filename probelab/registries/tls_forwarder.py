"""A TLS endpoint for one host name that passes every connection on to another TLS server.

Docker reaches a registry by the host name in the image reference, on port 443, and checks
the certificate against that name. To let Docker push `<ecr-host>/repo:tag` into a registry
that listens elsewhere under another certificate, this serves a self-signed certificate for
`<ecr-host>` on a loopback address and forwards the decrypted stream to the real registry:
over TLS verified with the registry's CA (the local cluster's registry), or as it is to a
registry that speaks plain HTTP on loopback (kind's, published on 127.0.0.1). The
certificate lives only as long as the forwarder; its PEM is what the client is told to
trust.
"""

import asyncio
import ssl
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from probelab.errors import ProbelabError
from probelab.secrets import SECRETS

_CHUNK = 64 * 1024
_CERT_LIFETIME = timedelta(days=1)


def self_signed(host: str) -> tuple[bytes, bytes]:
    """A certificate for `host` signed by its own key, and that key (both PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + _CERT_LIFETIME)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    SECRETS.register(key_pem.decode())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class TlsForwarder:
    """Serves `host` on `listen` and forwards to `upstream` (`address:port`), over TLS
    checked against `upstream_ca`, or unencrypted when that is None."""

    def __init__(
        self, host: str, listen: tuple[str, int], upstream: str, upstream_ca: Path | None
    ) -> None:
        self.host = host
        self.listen = listen
        upstream_host, _, port = upstream.rpartition(":")
        self._upstream = (upstream_host, int(port))
        self._client_tls = (
            ssl.create_default_context(cafile=str(upstream_ca)) if upstream_ca else None
        )
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self.certificate, key = self_signed(host)
        self._server_tls = _server_context(self.certificate, key)

    def start(self) -> "TlsForwarder":
        try:
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._forward, *self.listen, ssl=self._server_tls)
            )
        except OSError as error:
            self._loop.close()
            address, port = self.listen
            raise ProbelabError(
                f"cannot serve {self.host} on {address}:{port} ({error.strerror}); "
                "is another ECR stand-in session running?"
            ) from error
        self._thread = threading.Thread(target=self._loop.run_forever, name="tls-forwarder")
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        """The port it listens on (the one the system picked, when asked for 0)."""
        assert self._server is not None, "not started"
        return int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        server = self._server

        async def close() -> None:
            server.close()  # no new connections; end the open ones (Docker keeps them alive)
            open_ones = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in open_ones:
                task.cancel()
            await asyncio.gather(*open_ones, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = self._upstream
        try:
            up_reader, up_writer = await asyncio.open_connection(
                host, port, ssl=self._client_tls, server_hostname=host if self._client_tls else None
            )
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except asyncio.CancelledError:
            # `stop` ends open connections; the pipes closed both writers. Ending normally
            # keeps asyncio's stream callback from reporting the cancellation as an error.
            return


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction until it ends, then close where it was copied to."""
    try:
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            await writer.drain()
    except (OSError, ssl.SSLError):
        pass
    finally:
        writer.close()


def _server_context(certificate: bytes, key: bytes) -> ssl.SSLContext:
    """ssl loads certificates from files only: write them to a private folder and drop it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory(prefix="probelab-tls-") as folder:
        cert_file, key_file = Path(folder) / "tls.crt", Path(folder) / "tls.key"
        cert_file.write_bytes(certificate)
        key_file.touch(mode=0o600)
        key_file.write_bytes(key)
        context.load_cert_chain(cert_file, key_file)
    return context
