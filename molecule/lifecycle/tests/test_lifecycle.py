"""What users see after side_effect.yml revoked the client's "contractor" certificate, ran
the report, then revoked web2's "probe" by host and item while web2 showed the client's
worker certificate in its place, and Max Mustermann by person while the client (the
people host) was stopped: real handshakes from the client, the CA's answer to a renewal,
John Doe's PKCS#12 bundle, the report's table and the node_exporter textfiles."""

from __future__ import annotations

import json
import math
import os
import shlex
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from conftest import curl_status
from prometheus_client.parser import text_string_to_metric_families

BUNDLE = "/etc/ssl/mtls/ca-bundle.pem"
SERVERS = ["web1", "web2"]
PEOPLE = "/etc/ssl/mtls/people"
P12 = f"{PEOPLE}/john-doe.p12"
PASSPHRASE = "lifecycle-only-john-doe-bundle-passphrase"
TEXTFILE = "/var/lib/prometheus/node-exporter/mtls_certificates.prom"
EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))
# Copies of web2's probe and of Max's certificate and key, taken before web2 showed the
# worker's certificate in its place and before the client stopped, are on the client.
COPIES = "/root"
# Every certificate of the fleet: (host, item) -> (the container that has it, its file).
FLEET = {
    ("lifecycle-web1", "web"): ("lifecycle-web1", "/etc/ssl/mtls/web.crt"),
    ("lifecycle-web2", "web"): ("lifecycle-web2", "/etc/ssl/mtls/web.crt"),
    ("lifecycle-client", "worker"): ("lifecycle-client", "/etc/ssl/mtls/worker.crt"),
    ("lifecycle-client", "contractor"): ("lifecycle-client", "/etc/ssl/mtls/contractor.crt"),
    ("lifecycle-client", "john-doe"): ("lifecycle-client", f"{PEOPLE}/john-doe.crt"),
    ("lifecycle-client", "max-mustermann"): ("lifecycle-client", f"{PEOPLE}/max-mustermann.crt"),
    ("lifecycle-web2", "probe"): ("lifecycle-client", f"{COPIES}/probe.crt"),
}


@pytest.fixture
def client(container):
    return container("lifecycle-client")


def _with(name: str, directory: str = "/etc/ssl/mtls") -> list[str]:
    stem = f"{directory}/{name}"
    return ["--cacert", BUNDLE, "--cert", f"{stem}.crt", "--key", f"{stem}.key"]


def _serial(host, path: str) -> str:
    return host.check_output(f"openssl x509 -in {path} -noout -serial").removeprefix("serial=")


def _not_after(host, path: str) -> datetime:
    text = host.check_output(f"openssl x509 -in {path} -noout -enddate").removeprefix("notAfter=")
    return datetime.strptime(text, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=timezone.utc)


# ------------------------------------------------------------------------- revocation


@pytest.mark.parametrize("server", SERVERS)
def test_the_revoked_certificate_gets_403_at_every_server(client, server):
    assert curl_status(client, f"https://{server}/", *_with("contractor")) == "403"


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("name", ["worker"])
def test_other_clients_still_get_200(client, server, name):
    assert curl_status(client, f"https://{server}/", *_with(name)) == "200"


@pytest.mark.parametrize("server", SERVERS)
def test_john_doe_still_gets_200(client, server):
    assert curl_status(client, f"https://{server}/", *_with("john-doe", PEOPLE)) == "200"


def test_the_ca_refuses_to_renew_the_revoked_certificate(client):
    # POST /1.0/renew over mTLS with the certificate itself, as a renewal timer would.
    revoked = curl_status(client, "https://ca:9000/1.0/renew", "-X", "POST", *_with("contractor"))
    assert revoked == "401"
    assert curl_status(client, "https://ca:9000/1.0/renew", "-X", "POST", *_with("worker")) == "201"


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("name", ["probe", "max-mustermann"])
def test_the_certificates_revoked_from_the_issuance_record_get_403(client, server, name):
    # web2's probe: revoked while web2 showed the worker's certificate in its place; Max's:
    # revoked while the client, his certificate's host, was stopped.
    assert curl_status(client, f"https://{server}/", *_with(name, COPIES)) == "403"


def test_the_revocation_list_names_each_certificate_once(client):
    listed = yaml.safe_load((EPHEMERAL / "inventory" / "revoked-certificates.yml").read_text())
    entries = listed["revoked_certificates"]
    assert [(e["host"], e["item"], e["subject"]) for e in entries] == [
        ("lifecycle-client", "contractor", "CN=contractor"),
        ("lifecycle-web2", "probe", "CN=probe"),
        ("lifecycle-client", "max-mustermann", "CN=Max Mustermann"),
    ]
    assert entries[1]["serial"] == _serial(client, f"{COPIES}/probe.crt")
    assert entries[2]["serial"] == _serial(client, f"{COPIES}/max-mustermann.crt")
    # Not the worker's, whose certificate web2 showed as its own.
    assert _serial(client, "/etc/ssl/mtls/worker.crt") not in {e["serial"] for e in entries}


def test_the_issuance_record_holds_every_certificate_the_role_issued(container):
    record = yaml.safe_load((EPHEMERAL / "inventory" / "issued-certificates.yml").read_text())
    by_item = {(e["host"], e["item"]): e for e in record["issued_certificates"]}
    assert set(by_item) == set(FLEET)
    for key, (where, path) in FLEET.items():
        assert by_item[key]["serial"] == _serial(container(where), path)


@pytest.mark.parametrize("server", ["lifecycle-web1", "lifecycle-web2"])
def test_the_servers_deny_the_serial_by_name(container, client, server):
    conf = container(server).file("/etc/nginx/conf.d/nginx_mtls.conf").content_string
    for path in (
        "/etc/ssl/mtls/contractor.crt",
        f"{COPIES}/probe.crt",
        f"{PEOPLE}/max-mustermann.crt",
    ):
        assert f'"{_serial(client, path)}" 1;' in conf


# ------------------------------------------------------------------------- people


def _pkcs12(client, args: str, passphrase: str):
    """openssl pkcs12 on the client, the passphrase in the environment (never in argv)."""
    command = f"openssl pkcs12 -in {P12} {args} -passin env:P12_PASS"
    return client.run(f"P12_PASS={shlex.quote(passphrase)} {command}")


def test_the_bundle_is_0600_and_opens_with_the_passphrase(client):
    bundle = client.file(P12)
    assert bundle.mode == 0o600
    assert bundle.user == "root"
    result = _pkcs12(client, "-info -noout", PASSPHRASE)
    assert result.rc == 0, result.stderr
    # The default, modern encryption.
    assert "AES-256-CBC" in result.stderr + result.stdout


def test_the_bundle_refuses_a_wrong_passphrase(client):
    result = _pkcs12(client, "-info -noout", "not-the-passphrase")
    assert result.rc != 0
    assert "Mac verify error" in result.stderr


@pytest.mark.parametrize("server", SERVERS)
def test_curl_with_the_certificate_and_key_from_the_bundle_gets_200(client, server):
    work = client.check_output("mktemp -d")
    try:
        # Leaf first, then the intermediate: NGINX trusts the root only, so the client
        # must send the intermediate too.
        assert _pkcs12(client, f"-clcerts -nokeys -out {work}/leaf.crt", PASSPHRASE).rc == 0
        assert _pkcs12(client, f"-cacerts -nokeys -out {work}/chain.crt", PASSPHRASE).rc == 0
        assert _pkcs12(client, f"-nocerts -nodes -out {work}/john.key", PASSPHRASE).rc == 0
        client.check_output(f"cat {work}/leaf.crt {work}/chain.crt > {work}/john.crt")
        subject = client.check_output(f"openssl x509 -in {work}/john.crt -noout -subject")
        assert subject == "subject=CN = John Doe"
        # The leaf alone is refused (400): the test would pass for the wrong reason otherwise.
        leaf_only = ["--cacert", BUNDLE, "--cert", f"{work}/leaf.crt", "--key", f"{work}/john.key"]
        assert curl_status(client, f"https://{server}/", *leaf_only) == "400"
        args = ["--cacert", BUNDLE, "--cert", f"{work}/john.crt", "--key", f"{work}/john.key"]
        assert curl_status(client, f"https://{server}/", *args) == "200"
    finally:
        client.run(f"rm -rf {shlex.quote(work)}")


# ------------------------------------------------------------------------- report


def _report_rows() -> list[list[str]]:
    lines = json.loads((EPHEMERAL / "report.json").read_text())
    header = lines[0].split()
    assert header[:2] == ["EXPIRES", "(UTC)"]
    rows = []
    for line in lines[1:]:
        if not line:
            break
        rows.append([cell for cell in line.split("  ") if cell.strip()])
    return [[cell.strip() for cell in row] for row in rows]


def test_the_report_lists_every_certificate_with_serial_and_days_left(container):
    rows = _report_rows()
    seen = {}
    for expires, days, status, host, name, _common_name, serial in rows:
        seen[(host, name)] = (expires, int(days), status, serial)
    assert set(seen) == set(FLEET)
    now = datetime.now(timezone.utc)
    for (host, name), (where, path) in FLEET.items():
        target = container(where)
        expires, days, status, serial = seen[(host, name)]
        not_after = _not_after(target, path)
        assert serial == _serial(target, path)
        assert expires == not_after.strftime("%Y-%m-%d %H:%M")
        # Whole days left when the report ran, minutes before this test.
        assert days in {math.floor((not_after - now).total_seconds() / 86400) + d for d in (0, 1)}
        # The report ran after the contractor's revocation, before step 6's.
        assert status == ("REVOKED" if name == "contractor" else "OK")
    # Soonest expiry first: the servers' and machines' 720h before John's year.
    expiries = [row[0] for row in rows]
    assert expiries == sorted(expiries)
    assert rows[-1][4] == "john-doe"


@pytest.mark.parametrize("host", ["lifecycle-web1", "lifecycle-web2", "lifecycle-client"])
def test_the_textfile_parses_and_matches_the_certificates(container, host):
    target = container(host)
    textfile = target.file(TEXTFILE)
    assert textfile.mode == 0o644
    families = {f.name: f for f in text_string_to_metric_families(textfile.content_string)}
    names = {name for (owner, name) in FLEET if owner == host}

    def values(metric: str) -> dict[str, float]:
        samples = families[metric].samples
        assert all(s.labels["host"] == host for s in samples)
        return {s.labels["name"]: s.value for s in samples}

    not_after = values("mtls_certificate_not_after_seconds")
    assert set(not_after) == names
    for name in names:
        where, path = FLEET[(host, name)]
        assert not_after[name] == _not_after(container(where), path).timestamp()
    assert values("mtls_certificate_present") == dict.fromkeys(names, 1.0)
    assert values("mtls_certificate_needs_signing") == dict.fromkeys(names, 0.0)
    revoked = values("mtls_certificate_revoked")
    assert revoked == {name: 1.0 if name == "contractor" else 0.0 for name in names}
    info = {s.labels["name"]: s.labels for s in families["mtls_certificate_info"].samples}
    for name in names:
        where, path = FLEET[(host, name)]
        assert info[name]["serial"] == _serial(container(where), path)
    # No half-written file was left behind (node_exporter reads every *.prom).
    left = target.check_output("ls -A /var/lib/prometheus/node-exporter")
    assert left == "mtls_certificates.prom"


def test_node_exporter_serves_the_textfile(container):
    web1 = container("lifecycle-web1")
    metrics = web1.check_output("curl --silent --show-error http://127.0.0.1:9100/metrics")
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    [sample] = families["mtls_certificate_not_after_seconds"].samples
    assert sample.labels["host"] == "lifecycle-web1"
    assert sample.labels["name"] == "web"
    assert sample.value == _not_after(web1, "/etc/ssl/mtls/web.crt").timestamp()
    # node_exporter read the file without error.
    [error] = families["node_textfile_scrape_error"].samples
    assert error.value == 0
