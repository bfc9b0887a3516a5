"""The nginx_mtls role, proved with real handshakes from the client container.

Site ``app`` (https://web/) has ssl_verify_client on and proxies to an upstream
that echoes the request headers as JSON; site ``optional`` (https://web:8443/)
is the worked example with ssl_verify_client optional. Every refused client
certificate has CN=Alice, the name on the allow list, so each refusal comes
from the property under test.
"""

from __future__ import annotations

import json
import shlex
import urllib.parse

import pytest
from conftest import curl_status

DIR = "/etc/ssl/nginx-mtls-test"
CA = f"{DIR}/ca.crt"
APP = "https://web/"
OPTIONAL = "https://web:8443/"
NO_CA = "https://web:9443/"


@pytest.fixture
def web(container):
    return container("nginx-web")


@pytest.fixture
def client(container):
    return container("nginx-client")


def cert_args(name: str) -> list[str]:
    return ["--cacert", CA, "--cert", f"{DIR}/{name}.crt", "--key", f"{DIR}/{name}.key"]


def echoed_headers(
    client, *extra: str, name: str = "alice", url: str = APP
) -> dict[str, list[str]]:
    """Headers the upstream received for a request made with ``name``'s certificate."""
    command = ["curl", "--silent", "--show-error", "--fail", *cert_args(name), *extra, url]
    return json.loads(client.check_output(shlex.join(command)))


@pytest.mark.parametrize("url", [APP, OPTIONAL, f"{APP}cn/"])
def test_valid_client_certificate_gets_200(client, url):
    assert curl_status(client, url, *cert_args("alice")) == "200"


@pytest.mark.parametrize(("url", "status"), [(APP, "400"), (OPTIONAL, "403")])
def test_no_client_certificate_is_refused(client, url, status):
    # verify_client on: NGINX's own 400; optional: the role's 403.
    assert curl_status(client, url, "--cacert", CA) == status


@pytest.mark.parametrize("url", [APP, OPTIONAL])
@pytest.mark.parametrize("name", ["foreign", "expired", "serverprofile"])
def test_invalid_client_certificate_is_refused(client, url, name):
    # A certificate that fails verification gets 400 in both modes.
    assert curl_status(client, url, *cert_args(name)) == "400"


def test_the_test_certificates_fail_for_the_intended_reason_only(client):
    def verify(name: str, purpose: str) -> str:
        result = client.run(f"openssl verify -purpose {purpose} -CAfile {CA} {DIR}/{name}.crt")
        return result.stdout + result.stderr

    assert "OK" in verify("alice", "sslclient")
    assert "unable to get local issuer certificate" in verify("foreign", "sslclient")
    assert "certificate has expired" in verify("expired", "sslclient")
    # The server-profile certificate is a valid server certificate; only its
    # purpose (serverAuth, no clientAuth) makes NGINX refuse it as a client.
    assert "OK" in verify("serverprofile", "sslserver")
    assert "unsuitable certificate purpose" in verify("serverprofile", "sslclient")


@pytest.mark.parametrize(
    ("path", "name", "status"),
    [
        ("cn/", "alice", "200"),
        ("cn/", "bob", "403"),
        ("dn/", "bob", "200"),
        ("dn/", "alice", "403"),
        ("mail/", "carol", "200"),
        ("mail/", "alice", "403"),
        ("", "bob", "200"),
    ],
)
def test_allow_lists(client, path, name, status):
    assert curl_status(client, f"{APP}{path}", *cert_args(name)) == status


@pytest.mark.parametrize("url", [APP, f"{APP}cn/", OPTIONAL])
def test_revoked_serial_gets_403(client, url):
    assert curl_status(client, url, *cert_args("revoked")) == "403"


def test_revoked_certificate_is_otherwise_valid(client):
    result = client.run(f"openssl verify -purpose sslclient -CAfile {CA} {DIR}/revoked.crt")
    assert result.rc == 0, result.stderr


def test_spoofed_identity_headers_do_not_reach_the_upstream(client):
    headers = echoed_headers(
        client,
        "--header",
        "X-SSL-Client-Subject: CN=Mallory,O=Evil",
        "--header",
        "x-ssl-client-verify: SUCCESS-spoofed",
        "--header",
        "X-SSL-Client-Serial: 01",
    )
    assert headers["x-ssl-client-subject"] == ["CN=Alice,O=Example Test"]
    assert headers["x-ssl-client-verify"] == ["SUCCESS"]
    assert len(headers["x-ssl-client-serial"]) == 1
    assert headers["x-ssl-client-serial"] != ["01"]


def test_upstream_receives_the_real_identity(client):
    headers = echoed_headers(client)
    x509 = f"openssl x509 -in {DIR}/alice.crt -noout"
    serial = client.check_output(f"{x509} -serial").split("=", 1)[1]
    fingerprint = client.check_output(f"{x509} -fingerprint -sha1").split("=", 1)[1]
    fingerprint = fingerprint.replace(":", "").lower()
    pem = client.file(f"{DIR}/alice.crt").content_string
    assert headers["x-ssl-client-verify"] == ["SUCCESS"]
    assert headers["x-ssl-client-subject"] == ["CN=Alice,O=Example Test"]
    assert headers["x-ssl-client-issuer"] == ["CN=nginx_mtls Test Root CA"]
    assert headers["x-ssl-client-serial"] == [serial.strip().upper()]
    assert headers["x-ssl-client-fingerprint"] == [fingerprint.strip()]
    assert urllib.parse.unquote(headers["x-ssl-client-cert"][0]).strip() == pem.strip()


def test_http_redirects_to_https(client):
    out = client.check_output(
        "curl --silent --output /dev/null --write-out '%{http_code} %{redirect_url}' http://web/some/path?x=1"
    )
    assert out == "301 https://web/some/path?x=1"


def test_static_location_serves_files(client):
    command = ["curl", "--silent", "--fail", *cert_args("alice"), f"{APP}static/"]
    out = client.check_output(shlex.join(command))
    assert out == "static page"


@pytest.mark.parametrize(("flag", "ok"), [("-tls1_1", False), ("-tls1_2", True), ("-tls1_3", True)])
def test_only_tls_12_and_13(client, flag, ok):
    result = client.run(
        # SECLEVEL=0 lets this client offer TLS 1.1, so a refusal is the server's.
        f"openssl s_client -connect web:443 -servername web {flag} -cipher DEFAULT:@SECLEVEL=0 "
        f"-CAfile {CA} -cert {DIR}/alice.crt -key {DIR}/alice.key </dev/null"
    )
    assert (result.rc == 0 and "Cipher is (NONE)" not in result.stdout) is ok


def test_config_is_valid_and_the_broken_directive_is_gone(web):
    config = web.file("/etc/nginx/conf.d/nginx_mtls.conf")
    assert config.mode == 0o644
    assert config.user == "root"
    assert "this_is_not_a_directive" not in config.content_string
    assert web.run("nginx -t").rc == 0
    assert web.check_output("ls /etc/nginx/conf.d") == "nginx_mtls.conf"


def test_default_site_is_removed_and_nginx_runs(web):
    assert not web.file("/etc/nginx/sites-enabled/default").exists
    service = web.service("nginx")
    assert service.is_running
    assert service.is_enabled


def test_optional_no_ca_passes_an_unknown_issuer_to_the_upstream_as_failed(client):
    headers = echoed_headers(client, name="foreign", url=NO_CA)
    assert headers["x-ssl-client-verify"][0].startswith("FAILED:")
    assert headers["x-ssl-client-subject"] == ["CN=Alice,O=Example Test"]


@pytest.mark.parametrize(("name", "status"), [("alice", "200"), ("foreign", "403")])
def test_allow_list_needs_a_verified_certificate_not_just_the_name(client, name, status):
    # The foreign certificate says CN=Alice too; optional_no_ca lets it in,
    # the allow list does not.
    assert curl_status(client, f"{NO_CA}cn/", *cert_args(name)) == status


@pytest.mark.parametrize("name", ["expired", "serverprofile"])
def test_optional_no_ca_still_refuses_other_verification_errors(client, name):
    assert curl_status(client, NO_CA, *cert_args(name)) == "400"
