"""What the host modules left on the host, checked with the host's own openssl."""

from __future__ import annotations

import pytest

DIR = "/etc/ssl/modules-test"


@pytest.fixture
def host(container):
    return container("modules-host")


@pytest.mark.parametrize(
    ("path", "mode"),
    [
        (f"{DIR}/web.key", 0o600),
        (f"{DIR}/web.crt", 0o644),
        ("/root/modules-scratch/four.key", 0o600),
    ],
)
def test_file_modes(host, path, mode):
    f = host.file(path)
    assert f.exists
    assert f.mode == mode
    assert f.user == "root"


def test_key_is_pkcs8_ec_p256(host):
    text = host.check_output(f"openssl pkey -in {DIR}/web.key -noout -text")
    assert "NIST CURVE: P-256" in text or "prime256v1" in text
    assert host.file(f"{DIR}/web.key").contains("BEGIN PRIVATE KEY")


def test_certificate_matches_key(host):
    cert_key = host.check_output(f"openssl x509 -in {DIR}/web.crt -noout -pubkey")
    key = host.check_output(f"openssl pkey -in {DIR}/web.key -pubout")
    assert cert_key == key


def test_certificate_verifies_against_trust_bundle(host):
    result = host.run(f"openssl verify -CAfile {DIR}/ca.pem {DIR}/web.crt")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip().endswith("OK")


@pytest.mark.parametrize(
    "text",
    [
        "DNS:web.example.test",
        "IP Address:192.0.2.10",
        "IP Address:2001:DB8:0:0:0:0:0:10",
        "TLS Web Server Authentication",
    ],
)
def test_certificate_has_requested_names_and_usage(host, text):
    assert text in host.check_output(f"openssl x509 -in {DIR}/web.crt -noout -text")


def test_no_temporary_files_left(host):
    names = host.check_output(f"ls -A {DIR} /root/modules-scratch").split()
    assert not [n for n in names if n.startswith(".")]


# ------------------------------------------------------------- the PKCS#12 bundle

P12 = f"{DIR}/web.p12"
PASS = "file:/root/modules-scratch/p12.pass"  # never the passphrase itself in argv
WRONG = "file:/root/modules-scratch/p12-wrong.pass"


def test_bundle_is_0600_root(host):
    f = host.file(P12)
    assert (f.exists, f.mode, f.user) == (True, 0o600, "root")


def test_bundle_opens_with_the_passphrase_and_is_modern(host):
    result = host.run(f"openssl pkcs12 -info -noout -in {P12} -passin {PASS}")
    assert result.rc == 0, result.stderr
    text = result.stdout + result.stderr
    assert "MAC: sha256" in text
    assert "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC" in text
    assert "PRF hmacWithSHA256" in text


def test_bundle_refuses_a_wrong_passphrase(host):
    result = host.run(f"openssl pkcs12 -info -noout -in {P12} -passin {WRONG}")
    assert result.rc != 0
    assert "mac verify error" in result.stderr.lower()


def test_bundle_holds_the_key_and_certificate(host):
    key = host.check_output(
        f"openssl pkcs12 -in {P12} -passin {PASS} -nocerts -nodes | openssl pkey -pubout"
    )
    assert key == host.check_output(f"openssl pkey -in {DIR}/web.key -pubout")
    fingerprint = "openssl x509 -noout -fingerprint -sha256"
    cert = host.check_output(
        f"openssl pkcs12 -in {P12} -passin {PASS} -clcerts -nokeys | {fingerprint}"
    )
    assert cert == host.check_output(f"{fingerprint} -in {DIR}/web.crt")
    chain = host.check_output(f"openssl pkcs12 -in {P12} -passin {PASS} -cacerts -nokeys")
    assert "subject=CN = modules Test Root CA" in chain
