"""The local cluster's PKI, checked with real keys and signatures."""

import base64
import stat
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from probelab.clusters.local.pki import PkiLayout, ensure_pki, write_admin_kubeconfig
from probelab.secrets import SECRETS

NODE = "probelab-node"
SERVER = "https://127.0.0.1:6443"
CONTEXT = "probelab-local"
APISERVER_IPS = ("127.0.0.1", "10.88.0.1", "10.96.0.1")
APISERVER_DNS = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
NODE_IPS = ("10.88.0.1",)

CLIENTS = {
    "admin": ("probelab-admin", ["system:masters"]),
    "kube-controller-manager": ("system:kube-controller-manager", []),
    "kube-scheduler": ("system:kube-scheduler", []),
    "kubelet": (f"system:node:{NODE}", ["system:nodes"]),
    "kube-proxy": ("system:kube-proxy", []),
    "coredns": ("probelab:coredns", []),
    "apiserver-kubelet-client": ("kube-apiserver-kubelet-client", ["system:masters"]),
}
SERVING = ("apiserver", "kubelet-serving")
WITH_KUBECONFIG = sorted(set(CLIENTS) - {"apiserver-kubelet-client"})


def _ensure(root: Path, **overrides: Any) -> PkiLayout:
    arguments: dict[str, Any] = {
        "node_name": NODE,
        "server": SERVER,
        "context": CONTEXT,
        "apiserver_ips": APISERVER_IPS,
        "apiserver_dns": APISERVER_DNS,
        "node_ips": NODE_IPS,
    }
    arguments.update(overrides)
    return ensure_pki(root, **arguments)


@pytest.fixture
def pki(tmp_path: Path) -> PkiLayout:
    return _ensure(tmp_path / "pki")


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.name != ".lock"}


def _changed(before: dict[str, bytes], after: dict[str, bytes]) -> set[str]:
    assert before.keys() == after.keys()
    return {name for name in before if before[name] != after[name]}


def _names(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(attribute.value) for attribute in cert.subject.get_attributes_for_oid(oid)]


def _usages(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def _sans(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    return ips, set(sans.get_values_for_type(x509.DNSName))


def _private_key(path: Path) -> Any:
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def test_ca_is_a_self_signed_ten_year_ec_ca(pki: PkiLayout) -> None:
    ca = _cert(pki.ca_cert)
    ca.verify_directly_issued_by(ca)
    assert _names(ca, NameOID.COMMON_NAME) == ["probelab-ca"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert timedelta(days=3640) < lifetime < timedelta(days=3660)
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert _private_key(pki.ca_key).public_key() == ca.public_key()


@pytest.mark.parametrize("name", [*CLIENTS, *SERVING])
def test_leaf_chains_to_the_ca_and_matches_its_key(pki: PkiLayout, name: str) -> None:
    cert = _cert(pki.cert(name))
    cert.verify_directly_issued_by(_cert(pki.ca_cert))
    assert _private_key(pki.key(name)).public_key() == cert.public_key()
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign


@pytest.mark.parametrize(("name", "expected"), CLIENTS.items())
def test_client_certificate_names_its_user_and_groups(
    pki: PkiLayout, name: str, expected: tuple[str, list[str]]
) -> None:
    cert = _cert(pki.cert(name))
    common_name, organizations = expected
    assert _names(cert, NameOID.COMMON_NAME) == [common_name]
    assert _names(cert, NameOID.ORGANIZATION_NAME) == organizations
    assert _usages(cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]


@pytest.mark.parametrize("name", SERVING)
def test_serving_certificates_are_for_server_auth(pki: PkiLayout, name: str) -> None:
    assert _usages(_cert(pki.cert(name))) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_apiserver_certificate_carries_the_requested_sans(pki: PkiLayout) -> None:
    assert _sans(_cert(pki.cert("apiserver"))) == (set(APISERVER_IPS), set(APISERVER_DNS))


def test_kubelet_serving_certificate_names_the_node(pki: PkiLayout) -> None:
    assert _sans(_cert(pki.cert("kubelet-serving"))) == (set(NODE_IPS), {NODE})


def test_key_files_are_owner_only_and_certs_readable(pki: PkiLayout) -> None:
    for path in pki.root.iterdir():
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.suffix == ".key":
            assert mode == 0o600, path.name
        elif path.suffix == ".crt":
            assert mode == 0o644, path.name


def test_service_account_keys_are_a_matching_rsa_2048_pair(pki: PkiLayout) -> None:
    key = _private_key(pki.sa_key)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048
    assert serialization.load_pem_public_key(pki.sa_pub.read_bytes()) == key.public_key()


def test_second_run_reuses_every_file(pki: PkiLayout) -> None:
    before = _snapshot(pki.root)
    _ensure(pki.root)
    assert _snapshot(pki.root) == before


def test_new_apiserver_sans_reissue_only_the_apiserver_certificate(pki: PkiLayout) -> None:
    before = _snapshot(pki.root)
    _ensure(pki.root, apiserver_ips=(*APISERVER_IPS, "192.168.50.10"))
    assert _changed(before, _snapshot(pki.root)) == {"apiserver.crt", "apiserver.key"}
    ips, _ = _sans(_cert(pki.cert("apiserver")))
    assert "192.168.50.10" in ips


def test_new_node_name_reissues_only_the_kubelet_files(pki: PkiLayout) -> None:
    before = _snapshot(pki.root)
    _ensure(pki.root, node_name="other-node")
    assert _changed(before, _snapshot(pki.root)) == {
        "kubelet.crt",
        "kubelet.key",
        "kubelet-serving.crt",
        "kubelet-serving.key",
        "kubelet.kubeconfig",
    }
    assert _names(_cert(pki.cert("kubelet")), NameOID.COMMON_NAME) == ["system:node:other-node"]


def test_replaced_ca_reissues_every_leaf_but_keeps_the_service_account_key(
    pki: PkiLayout,
) -> None:
    before = _snapshot(pki.root)
    pki.ca_key.unlink()
    _ensure(pki.root)
    after = _snapshot(pki.root)
    changed = _changed(before, after)
    assert {name for name in after if name.endswith(".crt")} <= changed
    assert {"sa.key", "sa.pub"}.isdisjoint(changed)
    ca = _cert(pki.ca_cert)
    for name in [*CLIENTS, *SERVING]:
        _cert(pki.cert(name)).verify_directly_issued_by(ca)


def test_certificate_close_to_expiry_is_renewed(pki: PkiLayout) -> None:
    ca_key = _private_key(pki.ca_key)
    old = _cert(pki.cert("kube-scheduler"))
    now = datetime.now(UTC)
    expiring = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(old.issuer)
        .public_key(old.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=360))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pki.cert("kube-scheduler").write_bytes(expiring.public_bytes(serialization.Encoding.PEM))
    before = _snapshot(pki.root)
    _ensure(pki.root)
    assert _changed(before, _snapshot(pki.root)) == {"kube-scheduler.crt", "kube-scheduler.key"}
    assert _cert(pki.cert("kube-scheduler")).not_valid_after_utc > now + timedelta(days=300)


def test_unreadable_key_reissues_its_pair(pki: PkiLayout) -> None:
    pki.key("kube-proxy").write_text("not a key\n")
    _ensure(pki.root)
    cert = _cert(pki.cert("kube-proxy"))
    assert _private_key(pki.key("kube-proxy")).public_key() == cert.public_key()
    cert.verify_directly_issued_by(_cert(pki.ca_cert))


def test_loosened_key_mode_is_tightened_without_rewriting(pki: PkiLayout) -> None:
    before = pki.key("admin").read_bytes()
    pki.key("admin").chmod(0o644)
    _ensure(pki.root)
    assert stat.S_IMODE(pki.key("admin").stat().st_mode) == 0o600
    assert pki.key("admin").read_bytes() == before


@pytest.mark.parametrize("name", WITH_KUBECONFIG)
def test_component_kubeconfig_embeds_the_ca_and_points_at_key_files(
    pki: PkiLayout, name: str
) -> None:
    config = yaml.safe_load(pki.kubeconfig(name).read_text())
    assert config["current-context"] == CONTEXT
    [cluster] = config["clusters"]
    [user] = config["users"]
    [context] = config["contexts"]
    assert cluster["name"] == CONTEXT
    assert cluster["cluster"]["server"] == SERVER
    ca_data = base64.b64decode(cluster["cluster"]["certificate-authority-data"])
    assert ca_data == pki.ca_cert.read_bytes()
    assert user["name"] == CLIENTS[name][0]
    assert user["user"] == {
        "client-certificate": str(pki.cert(name)),
        "client-key": str(pki.key(name)),
    }
    assert Path(user["user"]["client-key"]).is_absolute()
    assert context == {"name": CONTEXT, "context": {"cluster": CONTEXT, "user": user["name"]}}


def test_apiserver_kubelet_client_has_no_kubeconfig(pki: PkiLayout) -> None:
    assert not pki.kubeconfig("apiserver-kubelet-client").exists()


def test_embedded_admin_kubeconfig_is_self_contained(pki: PkiLayout, tmp_path: Path) -> None:
    path = tmp_path / "handout" / "kubeconfig"
    write_admin_kubeconfig(pki, path, server=SERVER, context=CONTEXT)
    text = path.read_text()
    config = yaml.safe_load(text)
    [user] = config["users"]
    credentials = {key: base64.b64decode(value) for key, value in user["user"].items()}
    assert credentials == {
        "client-certificate-data": pki.cert("admin").read_bytes(),
        "client-key-data": pki.key("admin").read_bytes(),
    }
    ca_data = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"])
    assert ca_data == pki.ca_cert.read_bytes()
    assert str(tmp_path) not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_private_keys_are_masked_in_output(pki: PkiLayout, tmp_path: Path) -> None:
    key_text = pki.key("admin").read_text()
    assert SECRETS.mask(f"leaked: {key_text}") == "leaked: ***"
    path = tmp_path / "kubeconfig"
    write_admin_kubeconfig(pki, path, server=SERVER, context=CONTEXT)
    key_data = yaml.safe_load(path.read_text())["users"][0]["user"]["client-key-data"]
    assert key_data not in SECRETS.mask(path.read_text())


def test_concurrent_runs_agree_on_one_ca(tmp_path: Path) -> None:
    root = tmp_path / "pki"
    with ThreadPoolExecutor(max_workers=4) as pool:
        layouts = list(pool.map(lambda _: _ensure(root), range(4)))
    assert {layout.root for layout in layouts} == {root.resolve()}
    ca = _cert(layouts[0].ca_cert)
    for name in [*CLIENTS, *SERVING]:
        _cert(layouts[0].cert(name)).verify_directly_issued_by(ca)


def test_apiserver_certificate_needs_a_san(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SAN"):
        _ensure(tmp_path, apiserver_ips=(), apiserver_dns=())


def test_ip_sans_are_normalised(tmp_path: Path) -> None:
    layout = _ensure(tmp_path, apiserver_ips=("127.0.0.1", "::1", "0:0:0:0:0:0:0:1"))
    ips = _cert(layout.cert("apiserver")).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert ips.value.get_values_for_type(x509.IPAddress) == [
        ip_address("127.0.0.1"),
        ip_address("::1"),
    ]
