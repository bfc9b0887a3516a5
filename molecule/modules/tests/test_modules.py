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
