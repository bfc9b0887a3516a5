# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""step_ca_revoke's backend (_stepca_modules.run_revoke), against the session step-ca.

Behaviour of step-ca 0.19 pinned here (observed, not assumed):
* a first revocation answers 200; a second one 400 "... is already revoked";
* any serial is accepted, even one the CA never issued;
* a revoked certificate can no longer be renewed over mTLS (401).
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import pytest
from conftest import CLIENTS_PASSWORD, SERVERS_PASSWORD, free_port
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.mtls.rollout.plugins.module_utils import _crypto, _stepca, _stepca_modules

WRONG_PASSWORD = "not-the-clients-password"


def _key_and_csr(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name(f"{common_name}@example.test")]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return key, csr.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def clients_key(step_ca):
    return step_ca.client().provisioner_key("clients", CLIENTS_PASSWORD.encode())


@pytest.fixture
def issue(step_ca, clients_key):
    """Sign a fresh client certificate; returns (SignedCertificate, private key)."""

    def _issue(common_name: str = "revoke-me"):
        key, csr = _key_and_csr(common_name)
        signed = step_ca.client().sign(clients_key, _stepca.SignRequest(csr=csr, duration="1h"))
        return signed, key

    return _issue


def _params(step_ca, **overrides):
    params = {
        "ca_url": step_ca.url,
        "root": None,
        "root_fingerprint": step_ca.root_fingerprint,
        "timeout": 10.0,
        "retries": 1,
        "provisioner": "clients",
        "provisioner_password": CLIENTS_PASSWORD,
        "provisioner_password_file": None,
        "serial": None,
        "certificate": None,
        "reason": "",
        "reason_code": 0,
    }
    params.update(overrides)
    return params


def _renew(step_ca, signed, key, tmp_path) -> int:
    """POST /1.0/renew over mTLS with the leaf as client certificate; the HTTP status."""
    cert_path = tmp_path / "leaf.crt"
    key_path = tmp_path / "leaf.key"
    cert_path.write_text(signed.fullchain)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    context = ssl.create_default_context(cadata=step_ca.root_pem)
    context.load_cert_chain(str(cert_path), str(key_path))
    request = urllib.request.Request(f"{step_ca.url}/1.0/renew", data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:
            assert json.loads(answer.read())["crt"].startswith("-----BEGIN CERTIFICATE")
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


# --------------------------------------------------------------------------- parsers

SERIAL = 0xDE7A55F2C8E1C53C9A1A4C2E6E0A3B4D


@pytest.mark.parametrize(
    "value",
    [
        SERIAL,
        str(SERIAL),
        f" {SERIAL} ",
        "DE7A55F2C8E1C53C9A1A4C2E6E0A3B4D",  # NGINX $ssl_client_serial
        "de7a55f2c8e1c53c9a1a4c2e6e0a3b4d",
        "0xDE7A55F2C8E1C53C9A1A4C2E6E0A3B4D",
        "de:7a:55:f2:c8:e1:c5:3c:9a:1a:4c:2e:6e:0a:3b:4d",  # openssl x509 -text
        "DE:7A:55:F2:C8:E1:C5:3C:9A:1A:4C:2E:6E:0A:3B:4D",
        "00:de:7a:55:f2:c8:e1:c5:3c:9a:1a:4c:2e:6e:0a:3b:4d",  # with the DER sign octet
    ],
)
def test_parse_serial_forms(value):
    assert _stepca.parse_serial(value) == SERIAL
    # One parser: the host side (certificate_info) and the controller side agree.
    assert _crypto.parse_serial(value) == SERIAL


def test_parse_serial_digits_only_is_decimal_unless_marked():
    assert _stepca.parse_serial("1234") == 1234
    assert _stepca.parse_serial("12:34") == 0x1234
    assert _stepca.parse_serial("0x1234") == 0x1234


@pytest.mark.parametrize(
    "value",
    [
        "",
        "xyz",
        "12::34",
        "0x",
        "-5",
        0,
        -1,
        True,
        1.5,
        None,
        ["1"],
        1 << 160,
        "ab:cde",
        # One-digit groups are ambiguous: 05F2 or 5F2 with a digit lost?
        "de:7a:5:f2",
        "5:f2",
        "0xde:7a",
        ":de:7a",
        "de:7a:",
    ],
)
def test_parse_serial_rejects(value):
    with pytest.raises(_stepca.StepCAError, match="serial must be") as info:
        _stepca.parse_serial(value)
    assert info.value.kind == "invalid"
    with pytest.raises(_crypto.CryptoError, match="serial must be"):
        _crypto.parse_serial(value)


@pytest.mark.parametrize(
    ("serial", "nginx"),
    [
        # What NGINX puts in $ssl_client_serial (OpenSSL's i2a_ASN1_INTEGER): two
        # upper-case hex digits per octet of the serial's magnitude.
        (0x01, "01"),
        (0x80, "80"),
        (0xABC, "0ABC"),
        (0xABCD, "ABCD"),
        (0x0A1B2C, "0A1B2C"),
        (SERIAL, "DE7A55F2C8E1C53C9A1A4C2E6E0A3B4D"),
    ],
)
def test_serial_hex_is_what_nginx_shows(serial, nginx):
    assert _crypto.serial_hex(serial) == nginx
    if nginx.isdigit():
        # Digits only are read as decimal; such hex needs 0x or colons to be read back.
        assert _crypto.parse_serial("0x" + nginx) == serial
    else:
        assert _crypto.parse_serial(nginx) == serial


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (None, 0),
        (0, 0),
        ("1", 1),
        (1, 1),
        ("keyCompromise", 1),
        ("key_compromise", 1),
        ("KEY-COMPROMISE", 1),
        ("cACompromise", 2),
        ("superseded", 4),
        ("cessation of operation", 5),
        ("certificateHold", 6),
        (9, 9),
        ("aACompromise", 10),
    ],
)
def test_parse_reason_code(value, code):
    assert _stepca_modules.parse_reason_code(value) == code


@pytest.mark.parametrize("value", [7, "7", 11, -1, "bogus", True, 1.0])
def test_parse_reason_code_rejects(value):
    with pytest.raises(_stepca.StepCAError, match="RFC 5280 reason code"):
        _stepca_modules.parse_reason_code(value)


@pytest.mark.parametrize("value", [8, "removeFromCRL"])
def test_remove_from_crl_is_refused(value):
    with pytest.raises(_stepca.StepCAError, match="removeFromCRL"):
        _stepca_modules.parse_reason_code(value)


def test_serial_and_certificate_are_exclusive(step_ca):
    with pytest.raises(_stepca.StepCAError, match="exactly one of serial and certificate"):
        _stepca_modules.run_revoke(_params(step_ca), check_mode=True)
    with pytest.raises(_stepca.StepCAError, match="exactly one"):
        _stepca_modules.run_revoke(_params(step_ca, serial="12", certificate="x"), check_mode=True)


def test_certificate_must_be_pem(step_ca):
    with pytest.raises(_stepca.StepCAError, match="certificate is not a PEM certificate"):
        _stepca_modules.run_revoke(_params(step_ca, certificate="hello"), check_mode=True)


# --------------------------------------------------------------------------- against the CA


def test_revoke_then_again_then_renewal_is_refused(step_ca, issue, tmp_path):
    signed, key = issue("alice")
    assert _renew(step_ca, signed, key, tmp_path) == 201  # renewable before

    first = _stepca_modules.run_revoke(
        _params(
            step_ca,
            serial=str(signed.serial),
            reason="key left the building",
            reason_code="keyCompromise",
        ),
        check_mode=False,
    )
    assert first["changed"] is True
    assert first["revoked"] is True
    assert first["already_revoked"] is False
    assert first["serial"] == str(signed.serial)
    assert first["serial_hex"] == _crypto.serial_hex(signed.serial)
    assert int(first["serial_hex"], 16) == signed.serial
    assert first["reason_code"] == 1
    assert first["root_fingerprint"] == step_ca.root_fingerprint

    # The same serial in NGINX's hex form: the same entry, so not changed.
    again = _stepca_modules.run_revoke(
        _params(step_ca, serial=first["serial_hex"], reason_code=4), check_mode=False
    )
    assert again["changed"] is False
    assert again["revoked"] is True
    assert again["already_revoked"] is True
    assert again["serial"] == first["serial"]

    assert _renew(step_ca, signed, key, tmp_path) == 401  # passive revocation blocks renewal


def test_revoke_by_certificate_with_password_file(step_ca, issue):
    signed, _ = issue("bob")
    result = _stepca_modules.run_revoke(
        _params(
            step_ca,
            provisioner_password=None,
            provisioner_password_file=step_ca.clients_password_file,
            certificate=signed.fullchain,
            root=step_ca.root_path,
            root_fingerprint=None,
        ),
        check_mode=False,
    )
    assert result["changed"] is True
    assert result["serial"] == str(signed.serial)
    assert result["subject"] == "CN=bob"
    assert result["not_after"] == signed.not_after


def test_any_provisioner_may_revoke(step_ca, issue):
    signed, _ = issue("carol")
    result = _stepca_modules.run_revoke(
        _params(
            step_ca,
            provisioner="servers",
            provisioner_password=SERVERS_PASSWORD,
            serial=str(signed.serial),
        ),
        check_mode=False,
    )
    assert result["changed"] is True


def test_unknown_serial_is_recorded_as_revoked(step_ca):
    # step-ca 0.19 does not look the serial up: a never-issued serial is "revoked" too.
    serial = "0x" + "5eed" * 8
    first = _stepca_modules.run_revoke(_params(step_ca, serial=serial), check_mode=False)
    assert (first["changed"], first["already_revoked"]) == (True, False)
    second = _stepca_modules.run_revoke(_params(step_ca, serial=serial), check_mode=False)
    assert (second["changed"], second["already_revoked"]) == (False, True)


def test_check_mode_contacts_no_ca_and_revokes_nothing(step_ca, issue):
    signed, _ = issue("dave")
    closed = f"https://127.0.0.1:{free_port()}"
    predicted = _stepca_modules.run_revoke(
        _params(
            step_ca,
            ca_url=closed,
            root=step_ca.root_path,
            root_fingerprint=None,
            serial=str(signed.serial),
            reason_code="certificateHold",
        ),
        check_mode=True,
    )
    assert predicted["changed"] is True
    assert predicted["revoked"] is False
    assert "already_revoked" not in predicted
    assert predicted["serial_hex"] == _crypto.serial_hex(signed.serial)
    assert "permanent" in predicted["warnings"][0]
    real = _stepca_modules.run_revoke(_params(step_ca, serial=str(signed.serial)), check_mode=False)
    assert real["changed"] is True  # check mode left it alone


def test_wrong_password_is_clear_and_secret_free(step_ca, issue):
    signed, _ = issue("erin")
    with pytest.raises(_stepca.StepCAError) as info:
        _stepca_modules.run_revoke(
            _params(step_ca, provisioner_password=WRONG_PASSWORD, serial=str(signed.serial)),
            check_mode=False,
        )
    assert info.value.kind == "wrong_password"
    assert "wrong password for provisioner 'clients'" in str(info.value)
    assert WRONG_PASSWORD not in str(info.value)
    # Nothing was revoked: the right password still changes it.
    result = _stepca_modules.run_revoke(
        _params(step_ca, serial=str(signed.serial)), check_mode=False
    )
    assert result["changed"] is True


def test_unknown_provisioner(step_ca):
    with pytest.raises(_stepca.StepCAError) as info:
        _stepca_modules.run_revoke(
            _params(step_ca, provisioner="nobody", serial="77"), check_mode=False
        )
    assert info.value.kind == "unknown_provisioner"
    assert "clients (JWK)" in str(info.value)


def test_missing_password_file_fails_in_check_mode_too(step_ca, tmp_path):
    params = _params(
        step_ca,
        provisioner_password=None,
        provisioner_password_file=str(tmp_path / "absent"),
        serial="77",
    )
    with pytest.raises(_stepca.StepCAError, match="cannot read the password file"):
        _stepca_modules.run_revoke(params, check_mode=True)


def test_is_already_revoked_needs_the_400_and_the_text():
    text = "certificate with serial number '5' is already revoked."
    assert _stepca_modules.is_already_revoked(_stepca.StepCAError(text, status=400))
    assert not _stepca_modules.is_already_revoked(_stepca.StepCAError(text, status=500))
    assert not _stepca_modules.is_already_revoked(_stepca.StepCAError("bad request", status=400))
    assert _stepca_modules.is_already_revoked(_stepca.StepCAError(text, status=400), 5)
    assert not _stepca_modules.is_already_revoked(_stepca.StepCAError(text, status=400), 55)


def test_ca_does_not_compare_token_subject_with_serial(step_ca, clients_key, issue):
    # Pinned because docs/step-ca-signing.md warns about it: step-ca 0.19 accepts a
    # revocation token whose sub names another serial.
    client = step_ca.client()
    signed, _ = issue("frank")
    body = {
        "serial": str(signed.serial),
        "ott": client.mint_token(clients_key, "1", audience_path="/1.0/revoke"),
        "reasonCode": 0,
        "reason": "",
        "passive": True,
    }
    assert client._request("POST", "/1.0/revoke", body) == {"status": "ok"}
    # Another provisioner meets the same "already revoked" answer.
    again = _stepca_modules.run_revoke(
        _params(
            step_ca,
            provisioner="servers",
            provisioner_password=SERVERS_PASSWORD,
            serial=str(signed.serial),
        ),
        check_mode=False,
    )
    assert (again["changed"], again["already_revoked"]) == (False, True)
