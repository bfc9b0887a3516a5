"""What a user sees after side_effect.yml started the renewal services (the worker's once more
beside a staged key its timer did not make), stopped the CA and started them again, and
removed "old" with state: absent."""

from __future__ import annotations

import time

import pytest
from conftest import curl_status

BUNDLE = "/etc/ssl/mtls/ca-bundle.pem"
# host -> certificate item renewed by its timer's service
RENEWED = {"renewal-web": "web", "renewal-client": "worker"}
WORKER = ["--cacert", BUNDLE, "--cert", "/etc/ssl/mtls/worker.crt"]
WORKER += ["--key", "/etc/ssl/mtls/worker.key"]


@pytest.fixture
def web(container):
    return container("renewal-web")


@pytest.fixture
def client(container):
    return container("renewal-client")


def _serial(host, path: str) -> str:
    return host.check_output(f"openssl x509 -in {path} -noout -serial").removeprefix("serial=")


def _sha(host, path: str) -> str:
    return host.check_output(f"sha256sum {path}").split()[0]


def _journal(host, name: str) -> str:
    return host.check_output(f"journalctl --no-pager -o cat -u mtls-renew-{name}.service")


@pytest.mark.parametrize(("name", "item"), RENEWED.items())
def test_the_service_renewed_the_certificate(container, name, item):
    host = container(name)
    issued, renewed = f"/root/issued-{item}.crt", f"/root/renewed-{item}.crt"
    assert _sha(host, issued) != _sha(host, renewed)
    assert _serial(host, issued) != _serial(host, renewed)
    assert f"{item}: renewed (certificate expires in" in _journal(host, item)
    # Same mode and owner as the certificate it replaced.
    assert host.file(renewed).mode == host.file(issued).mode
    assert host.file(f"/etc/ssl/mtls/{item}.crt").user == "root"
    verified = host.run(f"openssl verify -CAfile {BUNDLE} -untrusted {renewed} {renewed}")
    assert verified.rc == 0, verified.stderr


def test_web_reloaded_nginx_after_testing_it(web):
    journal = _journal(web, "web")
    assert "web: ran 'nginx -t'" in journal
    assert journal.index("ran 'nginx -t'") < journal.index("ran 'systemctl reload nginx'")


def test_nginx_serves_the_new_serial(web, client):
    wanted = _serial(web, "/root/renewed-web.crt")
    command = (
        "openssl s_client -connect web:443 -servername web -CAfile"
        f" {BUNDLE} </dev/null 2>/dev/null | openssl x509 -noout -serial"
    )
    # NGINX's reload hands new connections to new workers shortly after the signal.
    deadline = time.monotonic() + 10
    served = None
    while time.monotonic() < deadline:
        served = client.run(command).stdout.strip().removeprefix("serial=")
        if served == wanted:
            break
        time.sleep(0.2)
    assert served == wanted


def test_the_client_still_gets_200_with_its_new_key(client):
    assert curl_status(client, "https://web/", *WORKER) == "200"
    issued_key, key = "/root/issued-worker.key", "/etc/ssl/mtls/worker.key"
    assert _sha(client, issued_key) != _sha(client, key)
    assert client.file(key).mode == 0o600
    cert_key = client.check_output(
        "openssl x509 -in /etc/ssl/mtls/worker.crt -noout -pubkey | sha256sum"
    )
    assert cert_key == client.check_output(f"openssl pkey -in {key} -pubout | sha256sum")
    assert "new key" in _journal(client, "worker")
    assert not client.file(f"{key}.next").exists


def test_a_rekey_beside_a_staged_key_it_did_not_make_kept_the_key_and_left_that_file(client):
    staged = "/root/staged-worker.key.next"
    assert _sha(client, staged) == _sha(client, "/root/staged-after-worker.key.next")
    assert _sha(client, "/root/rekeyed-worker.key") == _sha(client, "/etc/ssl/mtls/worker.key")
    assert _serial(client, "/root/rekeyed-worker.crt") != _serial(
        client, "/root/renewed-worker.crt"
    )
    assert (
        "; kept the key without rekey: /etc/ssl/mtls/worker.key.next is not this certificate's key"
        in _journal(client, "worker")
    )


@pytest.mark.parametrize(("name", "item"), RENEWED.items())
def test_with_the_ca_down_the_service_fails_and_changes_nothing(container, name, item):
    host = container(name)
    assert host.run(f"systemctl is-failed mtls-renew-{item}.service").stdout.strip() == "failed"
    journal = _journal(host, item)
    assert f"{item}: renewal failed: the CA at https://ca:9000/1.0/" in journal
    assert "is unreachable" in journal
    assert _sha(host, f"/etc/ssl/mtls/{item}.crt") == _sha(host, f"/root/renewed-{item}.crt")


@pytest.mark.parametrize(("name", "item"), RENEWED.items())
def test_the_timer_is_listed(container, name, item):
    host = container(name)
    assert f"mtls-renew-{item}.timer" in host.check_output("systemctl list-timers --all")
    assert host.service(f"mtls-renew-{item}.timer").is_enabled


def test_state_absent_removed_everything(client):
    for path in (
        "/etc/ssl/mtls/old.key",
        "/etc/ssl/mtls/old.crt",
        "/etc/systemd/system/mtls-renew-old.timer",
        "/etc/systemd/system/mtls-renew-old.service",
        "/etc/mtls-rollout/renew/old.json",
    ):
        assert not client.file(path).exists, path
    assert "mtls-renew-old" not in client.check_output("systemctl list-timers --all")
    assert client.file("/etc/ssl/mtls/worker.crt").exists
