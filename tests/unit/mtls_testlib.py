# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test helpers for the host-module tests: a small real CA built with cryptography."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _sign_hash(key: Any) -> hashes.HashAlgorithm | None:
    return None if not hasattr(key, "curve") and not hasattr(key, "key_size") else hashes.SHA256()


@dataclass
class CA:
    """A root and an intermediate CA (EC P-256) that issue real leaf certificates."""

    root_key: Any
    root: x509.Certificate
    intermediate_key: Any
    intermediate: x509.Certificate

    def issue(
        self,
        public_key: Any,
        common_name: str = "web.example.com",
        sans: list[x509.GeneralName] | None = None,
        ekus: list[x509.ObjectIdentifier] | None = None,
        not_before: datetime | None = None,
        lifetime: timedelta = timedelta(hours=24),
        issuer_key: Any = None,
        issuer: x509.Certificate | None = None,
    ) -> x509.Certificate:
        """A leaf signed by the intermediate (or ``issuer``), serverAuth by default."""
        start = not_before or NOW - timedelta(hours=1)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name((issuer or self.intermediate).subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + lifetime)
        )
        if sans is None:
            sans = [x509.DNSName(common_name)]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        if ekus is None:
            ekus = [ExtendedKeyUsageOID.SERVER_AUTH]
        if ekus:
            builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
        signer = issuer_key or self.intermediate_key
        return builder.sign(signer, _sign_hash(signer))


def make_ca(name: str = "Test", key: Any = None) -> CA:
    """Build a root and intermediate CA; ``key`` (default EC P-256) is the root's key."""
    root_key = key or ec.generate_private_key(ec.SECP256R1())
    start, end = NOW - timedelta(days=30), NOW + timedelta(days=3650)
    root = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{name} Root CA"))
        .issuer_name(_name(f"{name} Root CA"))
        .public_key(root_key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .sign(root_key, _sign_hash(root_key))
    )
    intermediate_key = ec.generate_private_key(ec.SECP256R1())
    intermediate = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{name} Intermediate CA"))
        .issuer_name(root.subject)
        .public_key(intermediate_key.public_key())
        .serial_number(2)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(root_key, _sign_hash(root_key))
    )
    return CA(root_key, root, intermediate_key, intermediate)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)
