"""The full rollout, checked from the hosts with real TLS handshakes."""

from __future__ import annotations

import pytest
from conftest import curl_status, json_of, openssl_text

CERT_DIR = "/etc/ssl/mtls"
BUNDLE = f"{CERT_DIR}/ca-bundle.pem"
# John Doe is a person (mtls_people): his files are in the people folder of the client.
JOHN = f"{CERT_DIR}/people/john-doe"


@pytest.fixture
def ca(container):
    return container("ca")


@pytest.fixture
def web(container):
    return container("web")


@pytest.fixture
def client(container):
    return container("client")


def test_step_ca_answers_health_over_tls_from_the_client(client):
    health = json_of(client, f"curl --silent --show-error --cacert {BUNDLE} https://ca:9000/health")
    assert health == {"status": "ok"}


def test_step_ca_runs_as_its_own_user_under_a_hardened_unit(ca):
    service = ca.service("step-ca")
    assert service.is_running
    assert service.is_enabled
    assert ca.check_output("systemctl show -p User --value step-ca") == "step-ca"
    assert ca.check_output("systemctl show -p NoNewPrivileges --value step-ca") == "yes"
    assert ca.check_output("systemctl show -p ProtectSystem --value step-ca") == "strict"


@pytest.mark.parametrize(
    ("path", "mode"),
    [
        ("/etc/step-ca/secrets/password", 0o600),
        ("/etc/step-ca/secrets/root_ca_key", 0o600),
        ("/etc/step-ca/secrets/intermediate_ca_key", 0o640),
        ("/etc/step-ca/config/ca.json", 0o640),
    ],
)
def test_ca_secrets_are_not_world_readable(ca, path, mode):
    assert ca.file(path).mode == mode
    assert ca.file(path).user == "root"


def test_ca_json_holds_no_password_and_keys_are_encrypted(ca):
    config = ca.file("/etc/step-ca/config/ca.json").content_string
    assert "demo-only-provisioner-password" not in config
    assert "demo-only-ca-password" not in config
    for key in ("root_ca_key", "intermediate_ca_key"):
        pem = ca.file(f"/etc/step-ca/secrets/{key}").content_string
        assert pem.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")


@pytest.mark.parametrize(("stem", "host"), [(JOHN, "client"), (f"{CERT_DIR}/web", "web")])
def test_certificate_chains_to_the_root(container, stem, host):
    target = container(host)
    result = target.run(f"openssl verify -CAfile {BUNDLE} -untrusted {stem}.crt {stem}.crt")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip().endswith(": OK")


@pytest.mark.parametrize(("stem", "host"), [(JOHN, "client"), (f"{CERT_DIR}/web", "web")])
def test_private_key_is_0600(container, stem, host):
    key = container(host).file(f"{stem}.key")
    assert key.mode == 0o600
    assert key.user == "root"


@pytest.mark.parametrize("host", ["client", "web"])
def test_no_staged_key_is_left_and_every_key_matches_its_certificate(container, host):
    """After the key-type change and the failure cases of side_effect.yml."""
    target = container(host)
    assert target.check_output("find /etc/ssl -name '*.key.next'") == ""
    keys = target.check_output("find /etc/ssl -name '*.key'").split()
    assert keys
    for key in keys:
        cert = key[: -len(".key")] + ".crt"
        if not target.file(cert).exists:
            continue  # an item the CA refused (side_effect.yml): a key, no certificate
        from_key = target.check_output(f"openssl pkey -in {key} -pubout")
        from_cert = target.check_output(f"openssl x509 -in {cert} -noout -pubkey")
        assert from_key == from_cert, key


def test_client_certificate_is_the_worked_example(client):
    text = openssl_text(client, f"{JOHN}.crt")
    assert "Subject: CN = John Doe" in text
    assert "email:john.doe@example.com" in text
    assert "Public-Key: (2048 bit)" in text
    assert "TLS Web Client Authentication" in text
    assert "TLS Web Server Authentication" not in text


def test_server_certificate_is_server_only(web):
    text = openssl_text(web, f"{CERT_DIR}/web.crt")
    assert "DNS:web" in text
    assert "TLS Web Server Authentication" in text
    assert "TLS Web Client Authentication" not in text


def test_client_without_certificate_gets_403(client):
    assert curl_status(client, "https://web/", "--cacert", BUNDLE) == "403"


def test_client_with_its_certificate_gets_200(client):
    args = ["--cacert", BUNDLE, "--cert", f"{JOHN}.crt", "--key", f"{JOHN}.key"]
    assert curl_status(client, "https://web/", *args) == "200"


def test_john_doe_has_a_bundle_for_his_browser(client):
    bundle = client.file(f"{JOHN}.p12")
    assert bundle.mode == 0o600
    result = client.run(
        "P12_PASS=demo-only-john-doe-bundle-passphrase"
        f" openssl pkcs12 -in {JOHN}.p12 -nokeys -clcerts -passin env:P12_PASS"
        " | openssl x509 -noout -subject"
    )
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == "subject=CN = John Doe"


def test_page_greets_the_verified_client_by_subject(client):
    page = client.check_output(
        f"curl --silent --show-error --cacert {BUNDLE} --cert {JOHN}.crt "
        f"--key {JOHN}.key https://web/"
    )
    assert page == "Hello, CN=John Doe"


def test_server_certificate_is_refused_as_client_certificate(web):
    # The web host presents its own serverAuth-only certificate as a client.
    # OpenSSL rejects its purpose, and NGINX answers a certificate that failed
    # verification with 400 even in optional mode.
    args = ["--cacert", BUNDLE, "--cert", f"{CERT_DIR}/web.crt", "--key", f"{CERT_DIR}/web.key"]
    assert curl_status(web, "https://web/", "--resolve", "web:443:127.0.0.1", *args) == "400"


def test_nginx_serves_the_step_ca_certificate(client):
    out = client.check_output(
        f"openssl s_client -connect web:443 -servername web -CAfile {BUNDLE} "
        "-verify_return_error </dev/null 2>&1"
    )
    assert "Verify return code: 0 (ok)" in out
    assert "CN = web" in out
