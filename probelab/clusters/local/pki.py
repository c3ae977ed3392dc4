"""Certificates, keys and kubeconfigs for the local control plane.

Every component authenticates with a client certificate signed by one cluster CA, so the
apiserver maps the certificate's CN to a user name and its O entries to groups. Running
`ensure_pki` again keeps whatever is still valid and matches the request, so restarting the
cluster does not invalidate kubeconfigs handed out earlier or tokens signed with `sa.key`;
anything missing, expiring or describing a different node or address set is replaced.

Keys are ECDSA P-256: generating one takes well under a millisecond where an RSA 2048 key
takes tens to hundreds, which matters with a dozen keys on a two-core runner, and Go's TLS
stack (every Kubernetes component) and OpenSSL (the Python client) both accept them. The
service-account key is the exception: RSA 2048, because RS256 is the one signing algorithm
OpenID Connect makes mandatory, so anything validating service-account tokens against the
cluster's issuer can check it.
"""

import base64
import contextlib
import ipaddress
import os
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from probelab.locks import exclusive
from probelab.secrets import SECRETS

CA_COMMON_NAME = "probelab-ca"
APISERVER = "apiserver"
KUBELET_SERVING = "kubelet-serving"
REGISTRY_SERVING = "registry"

_CA_LIFETIME = timedelta(days=3650)
_LEAF_LIFETIME = timedelta(days=365)
# Replace a leaf this long before it expires, so a cluster started today survives a long run.
_RENEW_BEFORE = timedelta(days=30)
# Tolerate a little clock skew between writing a certificate and a component checking it.
_BACKDATE = timedelta(minutes=5)
_SA_KEY_BITS = 2048

_KEY_MODE = 0o600
_PUBLIC_MODE = 0o644

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_T = TypeVar("_T")


@dataclass(frozen=True)
class ClientIdentity:
    """Who a client certificate claims to be: the apiserver's user (CN) and groups (O).

    `kubeconfig` is false for identities a component uses through flags, not a kubeconfig.
    """

    name: str
    common_name: str
    organizations: tuple[str, ...] = ()
    kubeconfig: bool = True


ADMIN = ClientIdentity("admin", "probelab-admin", ("system:masters",))


def client_identities(node_name: str) -> tuple[ClientIdentity, ...]:
    """The client certificates the control plane needs; the kubelet's names its node."""
    return (
        ADMIN,
        ClientIdentity("kube-controller-manager", "system:kube-controller-manager"),
        ClientIdentity("kube-scheduler", "system:kube-scheduler"),
        ClientIdentity("kubelet", f"system:node:{node_name}", ("system:nodes",)),
        ClientIdentity("kube-proxy", "system:kube-proxy"),
        ClientIdentity("coredns", "probelab:coredns"),
        # The apiserver presents this one to kubelets (--kubelet-client-certificate/-key).
        ClientIdentity(
            "apiserver-kubelet-client",
            "kube-apiserver-kubelet-client",
            ("system:masters",),
            kubeconfig=False,
        ),
    )


@dataclass(frozen=True)
class PkiLayout:
    """Where each file lives, so callers build component flags without repeating names."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def sa_key(self) -> Path:
        return self.root / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.root / "sa.pub"

    def cert(self, name: str) -> Path:
        return self.root / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.root / f"{name}.key"

    def kubeconfig(self, name: str) -> Path:
        return self.root / f"{name}.kubeconfig"


@dataclass(frozen=True)
class _Leaf:
    """A certificate to issue from the CA: its file name, subject, purpose and SANs."""

    name: str
    subject: x509.Name
    usage: x509.ObjectIdentifier
    ips: tuple[_IPAddress, ...] = ()
    dns: tuple[str, ...] = ()


def ensure_pki(
    root: Path,
    *,
    node_name: str,
    server: str,
    context: str,
    apiserver_ips: Sequence[str],
    apiserver_dns: Sequence[str],
    node_ips: Sequence[str],
) -> PkiLayout:
    """Create or refresh the CA, serving and client certificates, SA keys and kubeconfigs.

    `server` is the apiserver URL written into the component kubeconfigs and `context` names
    their single cluster/user/context. Holds an exclusive lock on the directory meanwhile, so
    concurrent callers cannot end up with two different CAs.
    """
    if not node_name:
        raise ValueError("node_name must not be empty")
    if not apiserver_ips and not apiserver_dns:
        raise ValueError("the apiserver serving certificate needs at least one SAN")
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    layout = PkiLayout(root.resolve())
    clients = client_identities(node_name)
    leaves = [
        _Leaf(
            APISERVER,
            _subject("kube-apiserver"),
            ExtendedKeyUsageOID.SERVER_AUTH,
            _parse_ips(apiserver_ips),
            _unique(apiserver_dns),
        ),
        # The local image registry listens on loopback only.
        _Leaf(
            REGISTRY_SERVING,
            _subject("probelab-registry"),
            ExtendedKeyUsageOID.SERVER_AUTH,
            _parse_ips(["127.0.0.1"]),
            ("localhost",),
        ),
        _Leaf(
            KUBELET_SERVING,
            _subject(f"system:node:{node_name}", ("system:nodes",)),
            ExtendedKeyUsageOID.SERVER_AUTH,
            _parse_ips(node_ips),
            (node_name,),
        ),
        *(
            _Leaf(c.name, _subject(c.common_name, c.organizations), ExtendedKeyUsageOID.CLIENT_AUTH)
            for c in clients
        ),
    ]
    now = datetime.now(UTC)
    with exclusive(layout.root / ".lock"):
        ca_cert, ca_key = _ensure_ca(layout, now)
        _ensure_service_account_keys(layout)
        for leaf in leaves:
            _ensure_leaf(layout, leaf, ca_cert, ca_key, now)
        for client in clients:
            if client.kubeconfig:
                write_kubeconfig(
                    layout.kubeconfig(client.name),
                    server=server,
                    ca_cert=layout.ca_cert,
                    client_cert=layout.cert(client.name),
                    client_key=layout.key(client.name),
                    user=client.common_name,
                    context=context,
                )
    return layout


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca_cert: Path,
    client_cert: Path,
    client_key: Path,
    user: str,
    context: str,
    embed: bool = False,
) -> None:
    """Write a kubeconfig with one cluster and context named `context` and one user `user`.

    The CA is always embedded. The client certificate and key are referenced by absolute
    path unless `embed` is set; the embedded form is self-contained (for handing to users
    and tools outside the lab) and so holds a private key: it is written with mode 0600.
    """
    cluster: dict[str, str] = {
        "server": server,
        "certificate-authority-data": _b64(ca_cert.read_bytes()),
    }
    credentials: dict[str, str]
    if embed:
        key_pem = client_key.read_bytes()
        SECRETS.register(key_pem.decode())
        credentials = {
            "client-certificate-data": _b64(client_cert.read_bytes()),
            "client-key-data": _b64(key_pem),
        }
    else:
        credentials = {
            "client-certificate": str(client_cert.resolve()),
            "client-key": str(client_key.resolve()),
        }
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": cluster}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": user}}],
        "current-context": context,
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
    _write_if_changed(path, text.encode(), _KEY_MODE if embed else _PUBLIC_MODE)


def write_admin_kubeconfig(layout: PkiLayout, path: Path, *, server: str, context: str) -> None:
    """Write a self-contained admin kubeconfig at `path`, usable after the lab dir is gone."""
    write_kubeconfig(
        path,
        server=server,
        ca_cert=layout.ca_cert,
        client_cert=layout.cert(ADMIN.name),
        client_key=layout.key(ADMIN.name),
        user=ADMIN.common_name,
        context=context,
        embed=True,
    )


def _ensure_ca(
    layout: PkiLayout, now: datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Reuse the CA while it can still sign a full-lifetime leaf; otherwise start over."""
    cert = _load_cert(layout.ca_cert)
    key = _load_ec_key(layout.ca_key)
    subject = _subject(CA_COMMON_NAME)
    if (
        cert is not None
        and key is not None
        and cert.subject == subject
        and cert.public_key() == key.public_key()
        and _issued_by(cert, cert)
        and _is_ca(cert)
        and cert.not_valid_before_utc <= now
        and cert.not_valid_after_utc - now > _LEAF_LIFETIME
    ):
        return cert, key
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    cert = (
        _builder(subject, subject, public, now, _CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signs_certificates=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write_pair(layout.ca_cert, layout.ca_key, cert, key)
    return cert, key


def _ensure_leaf(
    layout: PkiLayout,
    leaf: _Leaf,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    now: datetime,
) -> None:
    """Keep the leaf if it still matches `leaf` and chains to this CA, else reissue it."""
    cert_path, key_path = layout.cert(leaf.name), layout.key(leaf.name)
    cert = _load_cert(cert_path)
    key = _load_ec_key(key_path)
    if cert is not None and key is not None and _leaf_matches(cert, key, leaf, ca_cert, now):
        return
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    builder = (
        _builder(leaf.subject, ca_cert.subject, public, now, _LEAF_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signs_certificates=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([leaf.usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if leaf.ips or leaf.dns:
        names: list[x509.GeneralName] = [x509.IPAddress(ip) for ip in leaf.ips]
        names += [x509.DNSName(name) for name in leaf.dns]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_pair(cert_path, key_path, cert, key)


def _leaf_matches(
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    leaf: _Leaf,
    ca_cert: x509.Certificate,
    now: datetime,
) -> bool:
    if not (
        _issued_by(cert, ca_cert)
        and cert.public_key() == key.public_key()
        and cert.subject == leaf.subject
        and cert.not_valid_before_utc <= now
        and cert.not_valid_after_utc - now > _RENEW_BEFORE
    ):
        return False
    extensions = cert.extensions
    try:
        usages = list(extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return False
    try:
        sans = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        ips = set(sans.get_values_for_type(x509.IPAddress))
        dns = set(sans.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        ips, dns = set(), set()
    return usages == [leaf.usage] and ips == set(leaf.ips) and dns == set(leaf.dns)


def _ensure_service_account_keys(layout: PkiLayout) -> None:
    """Keep an existing RSA signing key (tokens signed with it stay valid); derive sa.pub."""
    key = _load_key(layout.sa_key)
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < _SA_KEY_BITS:
        key = rsa.generate_private_key(public_exponent=65537, key_size=_SA_KEY_BITS)
        _write_atomic(layout.sa_key, _private_pem(key), _KEY_MODE)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_if_changed(layout.sa_pub, public, _PUBLIC_MODE)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public: ec.EllipticCurvePublicKey,
    now: datetime,
    lifetime: timedelta,
) -> x509.CertificateBuilder:
    """The fields every certificate here shares; callers add their own extensions."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + lifetime)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    """Signatures only: ECDSA keys never encipher, and only the CA signs certs and CRLs."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _subject(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _parse_ips(values: Sequence[str]) -> tuple[_IPAddress, ...]:
    return _unique([ipaddress.ip_address(value) for value in values])


def _unique(values: Sequence[_T]) -> tuple[_T, ...]:
    """Drop repeats but keep the caller's order, so the SAN list reads as it was given."""
    return tuple(dict.fromkeys(values))


def _load_cert(path: Path) -> x509.Certificate | None:
    data = _read(path)
    if data is None:
        return None
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        return None


def _load_key(path: Path) -> PrivateKeyTypes | None:
    """Read a private key, register it for masking and tighten a loosened file mode."""
    data = _read(path)
    if data is None:
        return None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    SECRETS.register(data.decode())
    _ensure_mode(path, _KEY_MODE)
    return key


def _load_ec_key(path: Path) -> ec.EllipticCurvePrivateKey | None:
    key = _load_key(path)
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    return None


def _private_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    """Serialize as SEC1/PKCS#1, the block types Kubernetes' own key helpers write and read."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    SECRETS.register(pem.decode())
    return pem


def _write_pair(
    cert_path: Path,
    key_path: Path,
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
) -> None:
    """Key first: a crash in between leaves a mismatched pair, which the next run replaces."""
    _write_atomic(key_path, _private_pem(key), _KEY_MODE)
    _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), _PUBLIC_MODE)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _write_if_changed(path: Path, data: bytes, mode: int) -> None:
    """Leave identical files alone so reruns do not touch mtimes watched by components."""
    if _read(path) == data:
        _ensure_mode(path, mode)
    else:
        _write_atomic(path, data, mode)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replace `path` in one rename; the temp file is 0600 from creation, so no key leaks."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def _ensure_mode(path: Path, mode: int) -> None:
    if stat.S_IMODE(path.stat().st_mode) != mode:
        path.chmod(mode)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
