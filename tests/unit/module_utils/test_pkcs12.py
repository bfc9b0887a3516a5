# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_pkcs12: inputs, encryption detection, opening, comparing and building bundles."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID
from mtls_testlib import pem

from ansible_collections.mtls.rollout.plugins.module_utils import _crypto, _pkcs12

PASSPHRASE = "correct horse battery staple"
CLIENT = [ExtendedKeyUsageOID.CLIENT_AUTH]
# cryptography < 38 (Ubuntu 22.04) writes only the legacy encryption; < 36 reads no
# friendly names. The tests run on 3.4.8, 38 and newer.
ENC = "modern" if _pkcs12.modern_supported() else "legacy"
needs_modern = pytest.mark.skipif(ENC != "modern", reason="modern needs cryptography >= 38")
needs_friendly_names = pytest.mark.skipif(
    not hasattr(pkcs12, "load_pkcs12"), reason="reading friendly names needs cryptography >= 36"
)


def _key_pem(key, passphrase: str | None = None) -> bytes:
    return _crypto.serialize_private_key(key, "pkcs8", passphrase)


@pytest.fixture
def person(test_ca):
    """John Doe's key, and his certificate file as the certificate role writes it."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = test_ca.issue(
        key.public_key(), "John Doe", sans=[x509.RFC822Name("john.doe@example.com")], ekus=CLIENT
    )
    return {"key": key, "cert": cert, "crt": pem(cert) + pem(test_ca.intermediate)}


def _inputs(person, **kwargs):
    kwargs.setdefault("encryption", ENC)
    return _pkcs12.load_inputs(_key_pem(person["key"]), person["crt"], **kwargs)


# ----------------------------------------------------------------------- inputs


def test_inputs_leaf_and_chain_from_the_crt_file(person, test_ca):
    bundle, warnings = _inputs(person)
    assert warnings == []
    assert bundle.certificate == person["cert"]
    assert bundle.chain == [test_ca.intermediate]
    assert bundle.friendly_name == "John Doe"  # the common name by default
    assert bundle.encryption == _pkcs12.expected_encryption(ENC)


def test_inputs_other_certificates_added_once(person, test_ca):
    others = [("bundle.pem", pem(test_ca.root) + pem(test_ca.intermediate))]
    bundle, _ = _inputs(person, other_certificates=others, friendly_name="JD")
    assert bundle.chain == [test_ca.intermediate, test_ca.root]
    assert bundle.friendly_name == "JD"


def test_inputs_encrypted_key(person):
    bundle, _ = _pkcs12.load_inputs(
        _key_pem(person["key"], "key secret"), person["crt"], key_passphrase="key secret"
    )
    assert _crypto.same_public_key(bundle.key, person["key"])


def test_inputs_key_not_matching_certificate(person):
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(_pkcs12.Pkcs12Error, match=r"the private key k\.pem does not match the"):
        _pkcs12.load_inputs(_key_pem(other), person["crt"], key_name="k.pem")


@pytest.mark.parametrize(
    ("key", "crt", "message"),
    [
        (b"not a key", None, "not a readable private key"),
        (None, b"not a certificate", "holds an unreadable certificate"),
        (None, b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "unreadable"),
    ],
)
def test_inputs_unreadable(person, key, crt, message):
    with pytest.raises(_pkcs12.Pkcs12Error, match=message):
        _pkcs12.load_inputs(key or _key_pem(person["key"]), crt or person["crt"])


def test_inputs_warn_when_the_chain_does_not_issue_the_leaf(person, other_ca):
    _, warnings = _pkcs12.load_inputs(
        _key_pem(person["key"]), pem(person["cert"]), [("other.pem", pem(other_ca.intermediate))]
    )
    assert len(warnings) == 1
    assert "no certificate of the chain issued 'CN=John Doe'" in warnings[0]


# ------------------------------------------------------------------- encryption


@pytest.mark.parametrize("scheme", [pytest.param("modern", marks=needs_modern), "legacy"])
def test_built_bundle_is_detected_as_built(person, scheme):
    wanted, _ = _inputs(person, encryption=scheme)
    data = _pkcs12.build_bundle(wanted, PASSPHRASE)
    found = _pkcs12.detect_encryption(data)
    assert found == _pkcs12.expected_encryption(scheme)
    if ENC == "modern":  # older cryptography chooses its own rounds
        assert found.kdf_rounds == _pkcs12.expected_encryption(scheme).kdf_rounds
    assert found.mac_rounds and found.mac_rounds >= 1


@needs_modern
def test_modern_and_legacy_differ(person):
    modern, _ = _inputs(person, encryption="modern")
    found = _pkcs12.detect_encryption(_pkcs12.build_bundle(modern, PASSPHRASE))
    assert found.key_cipher == "PBES2 PBKDF2-HMAC-SHA256 AES-256-CBC"
    assert found.mac == "HMAC-SHA256"
    legacy, _ = _inputs(person, encryption="legacy")
    found = _pkcs12.detect_encryption(_pkcs12.build_bundle(legacy, PASSPHRASE))
    assert (found.key_cipher, found.certificate_cipher, found.mac) == (
        "PBE-SHA1-3DES",
        "PBE-SHA1-3DES",
        "HMAC-SHA1",
    )


@pytest.mark.parametrize("data", [b"", b"garbage", b"\x30\x80\x02\x01\x03\x00\x00", b"\x30\x05"])
def test_detect_encryption_of_non_bundles_is_unknown(data):
    assert _pkcs12.detect_encryption(data).scheme == "unknown"


def test_detect_encryption_never_raises_on_damaged_bundles(person):
    wanted, _ = _inputs(person)
    data = _pkcs12.build_bundle(wanted, PASSPHRASE)
    schemes = set()
    for cut in range(0, len(data), 7):
        schemes.add(_pkcs12.detect_encryption(data[:cut]).scheme)
    for position in range(0, len(data), 5):
        damaged = bytearray(data)
        damaged[position] ^= 0xFF
        schemes.add(_pkcs12.detect_encryption(bytes(damaged)).scheme)
    assert schemes <= {"modern", "legacy", "other", "unknown"}
    assert "unknown" in schemes


OPENSSL = shutil.which("openssl")


@pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command")
@pytest.mark.parametrize(
    ("options", "scheme", "cert_cipher"),
    [
        # OpenSSL 3's defaults are the modern encryption.
        (
            ["-keypbe", "AES-256-CBC", "-certpbe", "AES-256-CBC", "-macalg", "sha256"],
            "modern",
            "PBES2 PBKDF2-HMAC-SHA256 AES-256-CBC",
        ),
        (
            ["-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1"],
            "legacy",
            "PBE-SHA1-3DES",
        ),
        (["-keypbe", "AES-256-CBC", "-certpbe", "NONE", "-macalg", "sha256"], "other", "none"),
        (
            ["-keypbe", "AES-256-CBC", "-certpbe", "AES-256-CBC", "-macalg", "sha1"],
            "other",
            "PBES2 PBKDF2-HMAC-SHA256 AES-256-CBC",
        ),
    ],
)
def test_detect_encryption_of_openssl_bundles(tmp_path, person, options, scheme, cert_cipher):
    (tmp_path / "k.pem").write_bytes(_key_pem(person["key"]))
    (tmp_path / "c.pem").write_bytes(person["crt"])
    out = tmp_path / "b.p12"
    subprocess.run(
        [OPENSSL, "pkcs12", "-export", "-inkey", "k.pem", "-in", "c.pem", "-out", str(out),
         "-passout", "env:P12_PASS", *options],
        cwd=tmp_path, env=dict(os.environ, P12_PASS=PASSPHRASE), check=True, capture_output=True,
    )  # fmt: skip
    found = _pkcs12.detect_encryption(out.read_bytes())
    assert (found.scheme, found.certificate_cipher) == (scheme, cert_cipher)


# --------------------------------------------------------------- open and compare


@pytest.mark.parametrize("scheme", [pytest.param("modern", marks=needs_modern), "legacy"])
def test_open_round_trip_has_no_differences(person, test_ca, scheme):
    wanted, _ = _inputs(person, encryption=scheme, other_certificates=[("r", pem(test_ca.root))])
    current = _pkcs12.open_bundle(_pkcs12.build_bundle(wanted, PASSPHRASE), PASSPHRASE)
    if current.friendly_name_known:
        assert current.friendly_name == "John Doe"
    assert current.certificate == person["cert"]
    assert sorted(c.subject.rfc4514_string() for c in current.chain) == [
        "CN=Test Intermediate CA",
        "CN=Test Root CA",
    ]
    assert _pkcs12.bundle_differences(current, wanted) == []


def test_open_with_wrong_passphrase(person):
    wanted, _ = _inputs(person)
    data = _pkcs12.build_bundle(wanted, PASSPHRASE)
    with pytest.raises(_pkcs12.Pkcs12Error, match="the passphrase does not open the bundle"):
        _pkcs12.open_bundle(data, "wrong horse")


def test_open_a_file_that_is_no_bundle():
    with pytest.raises(_pkcs12.Pkcs12Error, match="not a readable PKCS#12 bundle"):
        _pkcs12.open_bundle(b"-----BEGIN CERTIFICATE-----\n", PASSPHRASE)


def _changed(person, test_ca, what):
    """The wanted bundle for ``person`` with one thing changed."""
    if what == "key":
        key = ec.generate_private_key(ec.SECP256R1())
        cert = test_ca.issue(key.public_key(), "John Doe", ekus=CLIENT)
        return _pkcs12.load_inputs(_key_pem(key), pem(cert) + pem(test_ca.intermediate))[0]
    if what == "certificate":
        cert = test_ca.issue(person["key"].public_key(), "John Doe", ekus=CLIENT)
        return _pkcs12.load_inputs(_key_pem(person["key"]), pem(cert) + pem(test_ca.intermediate))[
            0
        ]
    if what == "chain":
        return _inputs(person, other_certificates=[("root", pem(test_ca.root))])[0]
    if what == "friendly name":
        return _inputs(person, friendly_name="Johnny")[0]
    return _inputs(person, encryption="legacy")[0]


@pytest.mark.parametrize(
    ("what", "reason"),
    [
        ("key", "the bundle holds another private key"),
        ("certificate", "the bundle holds another certificate (serial "),
        ("chain", "the chain differs: ['CN=Test Intermediate CA'] in the bundle"),
        pytest.param(
            "friendly name",
            "friendly name is 'John Doe', wanted 'Johnny'",
            marks=needs_friendly_names,
        ),
        pytest.param(
            "encryption",
            "the bundle uses modern encryption (PBES2 PBKDF2-HMAC-SHA256 AES-256-CBC",
            marks=needs_modern,
        ),
    ],
)
def test_each_difference_is_named(person, test_ca, what, reason):
    original, _ = _inputs(person)
    current = _pkcs12.open_bundle(_pkcs12.build_bundle(original, PASSPHRASE), PASSPHRASE)
    reasons = _pkcs12.bundle_differences(current, _changed(person, test_ca, what))
    assert any(text.startswith(reason) for text in reasons), reasons
    if what in ("chain", "friendly name", "encryption"):
        assert len(reasons) == 1, reasons


def test_chain_order_is_no_difference(person, test_ca):
    wanted, _ = _inputs(person, other_certificates=[("root", pem(test_ca.root))])
    reordered, _ = _pkcs12.load_inputs(
        _key_pem(person["key"]),
        pem(person["cert"]) + pem(test_ca.root) + pem(test_ca.intermediate),
        encryption=ENC,
    )
    current = _pkcs12.open_bundle(_pkcs12.build_bundle(reordered, PASSPHRASE), PASSPHRASE)
    assert _pkcs12.bundle_differences(current, wanted) == []


def test_rsa_key_bundle(test_ca):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = test_ca.issue(key.public_key(), "Jane Roe", ekus=CLIENT)
    wanted, _ = _pkcs12.load_inputs(_key_pem(key), pem(cert), encryption=ENC)
    current = _pkcs12.open_bundle(_pkcs12.build_bundle(wanted, PASSPHRASE), PASSPHRASE)
    assert _pkcs12.bundle_differences(current, wanted) == []
    assert current.chain == []


# ------------------------------------------------------------------------ refusals


def test_empty_passphrase_is_refused(person):
    wanted, _ = _inputs(person)
    with pytest.raises(_pkcs12.Pkcs12Error, match="passphrase must not be empty"):
        _pkcs12.Pkcs12Backend(wanted, "")
    with pytest.raises(_pkcs12.Pkcs12Error, match="passphrase must not be empty"):
        _pkcs12.build_bundle(wanted, "")


def test_modern_needs_cryptography_38(person, monkeypatch):
    monkeypatch.setattr(_pkcs12, "modern_supported", lambda: False)
    wanted, _ = _inputs(person, encryption="modern")
    with pytest.raises(_pkcs12.Pkcs12Error, match=r"needs Python cryptography >= 38"):
        _pkcs12.Pkcs12Backend(wanted, PASSPHRASE)
    legacy, _ = _inputs(person, encryption="legacy")
    data = _pkcs12.Pkcs12Backend(legacy, PASSPHRASE).produce()
    # cryptography >= 38 gives BestAvailableEncryption AES; only old versions give 3DES.
    assert _pkcs12.open_bundle(data, PASSPHRASE).certificate == person["cert"]


# ------------------------------------------------------------------------- backend


def test_backend_decisions(person):
    wanted, _ = _inputs(person)
    backend = _pkcs12.Pkcs12Backend(wanted, PASSPHRASE, name="b.p12")
    created = backend.assess(None)
    assert (created.action, created.reason) == ("create", "b.p12 does not exist")
    data = backend.produce()
    assert backend.assess(data).action == "keep"
    forced = _pkcs12.Pkcs12Backend(wanted, PASSPHRASE, force=True).assess(data)
    assert (forced.action, forced.reason) == ("rewrite", "force=true")
    other = _pkcs12.Pkcs12Backend(wanted, "another passphrase", name="b.p12").assess(data)
    assert other.action == "rewrite"
    assert other.reason == "b.p12: the passphrase does not open the bundle (another passphrase,"\
        " or a damaged file); rewritten"  # fmt: skip
    assert other.before["state"] == "unreadable"
    assert other.before["encryption"]["scheme"] == ENC


def test_facts_hold_no_secrets(person):
    wanted, _ = _inputs(person)
    text = repr(wanted.facts())
    assert "BEGIN" not in text
    assert PASSPHRASE not in text
    assert wanted.facts()["certificate"]["subject_string"] == "CN=John Doe"
    assert wanted.facts()["chain"][0]["subject_string"] == "CN=Test Intermediate CA"
