# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build the material of a step-ca 0.19 server without the ``step`` CLI.

A root and an intermediate CA certificate (EC P-256), JWK provisioner entries
with their password-encrypted keys, the X.509 templates of the ``client`` and
``server`` profiles, and the ``ca.json`` document. Every function returns data;
writing files (with safe modes) is the caller's job.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
except ImportError:  # without cryptography: the modules report it with missing_required_lib
    pass

from ansible_collections.mtls.rollout.plugins.module_utils import _crypto, _jose

ROOT_VALIDITY = datetime.timedelta(days=3652)  # ~10 years
INTERMEDIATE_VALIDITY = datetime.timedelta(days=1826)  # ~5 years
# Issue CA certificates slightly in the past so that small clock skews between
# the CA host and the clients do not make them "not yet valid".
BACKDATE = datetime.timedelta(minutes=5)

# The keyUsage block of step's default leaf template: RSA keys also get
# keyEncipherment (TLS 1.2 RSA key exchange), other keys only digitalSignature.
_KEY_USAGE = """\
{{- if typeIs "*rsa.PublicKey" .Insecure.CR.PublicKey }}
\t"keyUsage": ["keyEncipherment", "digitalSignature"],
{{- else }}
\t"keyUsage": ["digitalSignature"],
{{- end }}"""


def _leaf_template(ext_key_usage: str) -> str:
    # Same subject and SANs handling as step-ca's DefaultLeafTemplate: the subject
    # comes from the token's sub, the SANs from the token's sans (which the CA has
    # checked against the CSR). Only the extended key usage differs.
    return (
        "{\n"
        '\t"subject": {{ toJson .Subject }},\n'
        '\t"sans": {{ toJson .SANs }},\n'
        f"{_KEY_USAGE}\n"
        f'\t"extKeyUsage": ["{ext_key_usage}"]\n'
        "}"
    )


def client_only_template() -> str:
    """step-ca 0.19 X.509 template for leaf certificates with clientAuth only."""
    return _leaf_template("clientAuth")


def server_only_template() -> str:
    """step-ca 0.19 X.509 template for leaf certificates with serverAuth only."""
    return _leaf_template("serverAuth")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def _name(common_name: str) -> x509.Name:
    if not common_name:
        raise ValueError("a CA certificate needs a non-empty common name")
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def make_root(common_name: str, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """A self-signed root CA certificate for ``key``: pathlen 1, ~10 years, SHA-256."""
    now = _now()
    subject = _name(common_name)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + ROOT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def make_intermediate(
    common_name: str,
    root_cert: x509.Certificate,
    root_key: ec.EllipticCurvePrivateKey,
    key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    """An intermediate CA certificate for ``key``, signed by the root: pathlen 0, ~5 years.

    Its validity never extends past the root's.
    """
    now = _now()
    not_after = min(now + INTERMEDIATE_VALIDITY, _crypto.not_valid_after(root_cert))
    try:
        root_ski = root_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski)
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(root_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(aki, critical=False)
        .sign(root_key, hashes.SHA256())
    )


def make_jwk_provisioner(
    name: str,
    password: str | bytes,
    claims: dict[str, Any],
    x509_template: str | None = None,
) -> dict[str, Any]:
    """A ``ca.json`` JWK provisioner entry with a fresh EC P-256 key.

    The private key is stored only as ``encryptedKey``: a PBES2-HS256+A128KW /
    A256GCM JWE under ``password``, as ``step ca provisioner add`` writes it.
    ``claims`` is copied as given (for example ``minTLSCertDuration``,
    ``maxTLSCertDuration``, ``defaultTLSCertDuration``). ``x509_template``, when
    given, becomes ``options.x509.template``.
    """
    if not name:
        raise ValueError("a provisioner needs a name")
    secret = password.encode() if isinstance(password, str) else password
    if not secret:
        raise ValueError(f"provisioner {name}: the password must not be empty")
    jwk = _jose.generate_ec_jwk("P-256")
    entry: dict[str, Any] = {
        "type": "JWK",
        "name": name,
        "key": _jose.public_jwk(jwk),
        "encryptedKey": _jose.jwe_encrypt_pbes2(
            json.dumps(jwk, separators=(",", ":")).encode(), secret
        ),
    }
    if claims:
        entry["claims"] = dict(claims)
    if x509_template:
        entry["options"] = {"x509": {"template": x509_template}}
    return entry


def build_ca_config(
    root_path: str,
    crt_path: str,
    key_path: str,
    address: str,
    dns_names: list[str],
    db_dir: str,
    provisioners: list[dict[str, Any]],
) -> dict[str, Any]:
    """The ``ca.json`` document for step-ca 0.19 (badgerv2 database).

    The result is deterministic for the same arguments, so callers can compare it
    with the file on disk to decide whether to rewrite it.
    """
    if not dns_names:
        raise ValueError("dns_names must hold at least one name or address")
    return {
        "root": root_path,
        "federatedRoots": None,
        "crt": crt_path,
        "key": key_path,
        "address": address,
        "insecureAddress": "",
        "dnsNames": list(dns_names),
        "logger": {"format": "text"},
        "db": {"type": "badgerv2", "dataSource": db_dir},
        "authority": {"provisioners": list(provisioners)},
        "tls": {
            "cipherSuites": [
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            ],
            "minVersion": 1.2,
            "maxVersion": 1.3,
            "renegotiation": False,
        },
    }
