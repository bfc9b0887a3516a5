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
IDENTITY_HEADERS = [
    "X-SSL-Client-Subject",
    "X-SSL-Client-Issuer",
    "X-SSL-Client-Serial",
    "X-SSL-Client-Fingerprint",
    "X-SSL-Client-Cert",
]
# Stands for the client container's own address in expectations.
CLIENT_IP = object()


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


@pytest.mark.parametrize("name", ["foreign", "selfsigned"])
def test_optional_no_ca_sends_no_identity_for_an_unverified_certificate(client, name):
    # optional_no_ca lets an unknown issuer (or a self-signed certificate)
    # through, marked FAILED; its subject says CN=Alice, but anyone can write
    # that, so none of the identity headers reach the upstream, spoofed or not.
    spoofed = [arg for header in IDENTITY_HEADERS for arg in ("--header", f"{header}: CN=Mallory")]
    headers = echoed_headers(client, *spoofed, name=name, url=NO_CA)
    assert headers["x-ssl-client-verify"][0].startswith("FAILED:")
    assert {header.lower() for header in IDENTITY_HEADERS} & headers.keys() == set()


def test_optional_no_ca_sends_the_identity_of_a_verified_certificate(client):
    headers = echoed_headers(client, name="alice", url=NO_CA)
    assert headers["x-ssl-client-verify"] == ["SUCCESS"]
    assert headers["x-ssl-client-subject"] == ["CN=Alice,O=Example Test"]
    assert headers["x-ssl-client-issuer"] == ["CN=nginx_mtls Test Root CA"]
    assert len(headers["x-ssl-client-serial"]) == 1
    assert len(headers["x-ssl-client-fingerprint"]) == 1
    assert "BEGIN%20CERTIFICATE" in headers["x-ssl-client-cert"][0]


@pytest.mark.parametrize(("name", "status"), [("alice", "200"), ("foreign", "403")])
def test_allow_list_needs_a_verified_certificate_not_just_the_name(client, name, status):
    # The foreign certificate says CN=Alice too; optional_no_ca lets it in,
    # the allow list does not.
    assert curl_status(client, f"{NO_CA}cn/", *cert_args(name)) == status


@pytest.mark.parametrize("name", ["expired", "serverprofile"])
def test_optional_no_ca_still_refuses_other_verification_errors(client, name):
    assert curl_status(client, NO_CA, *cert_args(name)) == "400"


@pytest.fixture
def client_ip(client) -> str:
    return client.check_output("hostname -I").split()[0]


@pytest.mark.parametrize(
    ("header", "spoofed", "expected"),
    [
        # Removed: NGINX never sets these, so the upstream must not see them.
        ("X-Forwarded-Client-Cert", 'By=spiffe://evil;Subject="CN=Mallory"', None),
        ("SSL-Client-Cert", "-----BEGIN CERTIFICATE-----Mallory", None),
        ("ssl_client_cert", "-----BEGIN CERTIFICATE-----Mallory", None),
        ("Client-Cert", ":TWFsbG9yeQ==:", None),
        ("Forwarded", "for=203.0.113.7;proto=https;host=evil.example", None),
        ("X-ARR-ClientCert", "TWFsbG9yeQ==", None),
        # Overwritten with what NGINX saw.
        ("X-Real-IP", "203.0.113.7", CLIENT_IP),
        ("X-Forwarded-For", "203.0.113.7", CLIENT_IP),
        ("X-Forwarded-Host", "evil.example", "web"),
        ("X-Forwarded-Port", "1", "443"),
        ("X-Forwarded-Proto", "http", "https"),
        ("X-SSL-Client-Subject", "CN=Mallory", "CN=Alice,O=Example Test"),
    ],
)
def test_spoofed_identity_and_origin_headers_are_replaced(
    client, client_ip, header, spoofed, expected
):
    headers = echoed_headers(client, "--header", f"{header}: {spoofed}")
    expected = client_ip if expected is CLIENT_IP else expected
    if expected is None:
        assert header.lower() not in headers
    else:
        assert headers[header.lower()] == [expected]


def test_a_trusted_proxy_keeps_its_forwarded_for_chain(web):
    # 127.0.0.1 is in nginx_mtls_trusted_proxies; the noca site proxies a
    # request without a client certificate.
    command = [
        "curl", "--silent", "--show-error", "--fail",
        "--resolve", "web:9443:127.0.0.1", "--cacert", CA,
        "--header", "X-Forwarded-For: 203.0.113.7",
        "--header", "X-Real-IP: 203.0.113.8",
        NO_CA,
    ]  # fmt: skip
    headers = json.loads(web.check_output(shlex.join(command)))
    assert headers["x-forwarded-for"] == ["203.0.113.7, 127.0.0.1"]
    assert headers["x-real-ip"] == ["127.0.0.1"]
    assert headers["x-ssl-client-verify"] == ["NONE"]


REQUEST = r"printf 'GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n'"


@pytest.mark.parametrize("port", [443, 8443, 9443])
@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_no_tls_session_resumption(client, port, version):
    # A resumed session keeps the verification result of its first handshake,
    # even after the client certificate expired; the role turns resumption off.
    # Each connection sends a request and reads the answer, so that the
    # session (and any TLS 1.3 ticket) is complete before it is saved.
    session = f"/tmp/session-{port}{version}"
    s_client = (
        f"openssl s_client -connect web:{port} -servername web {version} -ign_eof "
        f"-CAfile {CA} -cert {DIR}/alice.crt -key {DIR}/alice.key"
    )
    first = client.run(f"rm -f {session}; {REQUEST} | {s_client} -sess_out {session}")
    assert "HTTP/1.1 200" in first.stdout
    assert "\nNew, TLSv1" in first.stdout
    if client.file(session).exists:
        # TLS 1.3 hands out a ticket even when the server will not take it back.
        second = client.run(f"{REQUEST} | {s_client} -sess_in {session}")
        assert "HTTP/1.1 200" in second.stdout
        assert "\nNew, TLSv1" in second.stdout
        assert "Reused, TLSv1" not in second.stdout
    else:
        # TLS 1.2: no session ID, so openssl has no session to save.
        assert version == "-tls1_2"


@pytest.mark.parametrize("port", [443, 8443, 9443])
def test_each_site_serves_its_certificate_file(web, port):
    # side_effect.yml replaced web.crt behind NGINX's back; the role reloaded.
    served = web.check_output(
        f"openssl s_client -connect 127.0.0.1:{port} -servername web </dev/null 2>/dev/null"
        " | openssl x509 -noout -fingerprint -sha256"
    )
    on_disk = web.check_output(f"openssl x509 -in {DIR}/web.crt -noout -fingerprint -sha256")
    renewed = web.check_output(
        f"openssl x509 -in {DIR}/web-renewed.crt -noout -fingerprint -sha256"
    )
    assert served == on_disk == renewed


def test_two_spellings_of_a_revoked_serial_render_one_map_key(client, web):
    # molecule.yml lists revoked.crt's serial as colon hex and as an integer.
    serial = client.check_output(f"openssl x509 -in {DIR}/revoked.crt -noout -serial")
    serial = serial.split("=", 1)[1].strip()
    config = web.file("/etc/nginx/conf.d/nginx_mtls.conf").content_string
    assert config.count(f'"{serial}" 1;') == 1


def test_the_record_says_what_nginx_loaded(web):
    # Written by the reload handler: the files NGINX reads at reload that the
    # role watches, as they were just before the last reload. side_effect.yml
    # added a root to the trust bundle behind NGINX's back; the catch-up run
    # reloaded and recorded it. The certificate of site regex, which the
    # served-certificate check cannot ask (its name is a regular expression),
    # is watched; web.crt, which the check asks for, and every key are not.
    record = web.file("/var/lib/nginx/nginx_mtls-loaded.json")
    assert (record.user, record.group, record.mode) == ("root", "root", 0o644)

    def sha256(path: str) -> str:
        return web.check_output(f"sha256sum {path}").split()[0]

    config = "/etc/nginx/conf.d/nginx_mtls.conf"
    assert json.loads(record.content_string) == {
        "version": 1,
        "files": {
            config: sha256(config),
            CA: sha256(CA),
            "/etc/nginx/sites-enabled/default": None,
            f"{DIR}/regex.crt": sha256(f"{DIR}/regex.crt"),
        },
    }
    # The record of versions before 0.2.0 is removed by the first reload.
    assert not web.file("/var/lib/nginx/nginx_mtls-loaded-config.sha1").exists


def test_the_regex_named_site_serves_its_renewed_certificate_file(web):
    # side_effect.yml replaced regex.crt behind NGINX's back; the record made
    # the next run reload.
    served = web.check_output(
        "openssl s_client -connect 127.0.0.1:443 -servername regex1 </dev/null 2>/dev/null"
        " | openssl x509 -noout -serial"
    )
    on_disk = web.check_output(f"openssl x509 -in {DIR}/regex.crt -noout -serial")
    renewed = web.check_output(f"openssl x509 -in {DIR}/web-renewed.crt -noout -serial")
    assert served == on_disk == renewed


@pytest.mark.parametrize("url", [APP, OPTIONAL])
def test_a_root_added_to_the_trust_bundle_behind_nginx_s_back_is_trusted_after_the_next_run(
    client, url
):
    # side_effect.yml shows it refused before that run; CN=Alice, like every
    # refused certificate here, so the issuer alone decides.
    assert curl_status(client, url, *cert_args("second")) == "200"
