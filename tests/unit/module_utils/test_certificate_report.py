# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""certificate_report: each certificate's verdict, the node_exporter textfile, and the module."""

from __future__ import annotations

import os
import re
import stat
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import RFC822Name
from cryptography.x509.oid import ExtendedKeyUsageOID
from mtls_testlib import NOW, pem
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.mtls.rollout.plugins.module_utils import _certificate_report as report
from ansible_collections.mtls.rollout.plugins.modules import certificate_report as module

REPO = Path(__file__).resolve().parents[3]
CLIENT = [ExtendedKeyUsageOID.CLIENT_AUTH]


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture
def host(tmp_path, test_ca):
    """A certificate folder with a trust bundle; ``put(name, **issue)`` installs a pair."""
    (tmp_path / "ca-bundle.pem").write_bytes(pem(test_ca.root))

    def put(name, common_name=None, key=None, **issue):
        key = key or ec.generate_private_key(ec.SECP256R1())
        cert = test_ca.issue(key.public_key(), common_name or name, **issue)
        (tmp_path / f"{name}.crt").write_bytes(pem(cert) + pem(test_ca.intermediate))
        (tmp_path / f"{name}.key").write_bytes(_key_pem(key))
        return cert

    put.dir = tmp_path
    return put


def _options(folder, items, **more):
    params = {"items": items, "certificate_dir": str(folder), "renew_before": "0.33", **more}
    return report.Options.from_params(params)


def _inspect(folder, items, **more):
    return report.inspect_items(_options(folder, items, **more), now=NOW)


def test_the_defaults_are_the_certificate_role_s():
    defaults = yaml.safe_load((REPO / "roles/certificate/defaults/main.yml").read_text())
    assert defaults["certificate_dir"] == report.DEFAULT_CERTIFICATE_DIR
    assert defaults["certificate_renew_before"] == report.DEFAULT_RENEW_BEFORE
    specs = yaml.safe_load((REPO / "roles/certificate/meta/argument_specs.yml").read_text())
    item_options = specs["argument_specs"]["main"]["options"]["certificate_items"]["options"]
    assert item_options["profile"]["default"] == report.DEFAULT_PROFILE


def test_a_valid_certificate_with_its_facts(host):
    cert = host("web")
    [entry] = _inspect(host.dir, [{"name": "web", "common_name": "web"}])
    assert entry["status"] == "ok"
    assert entry["needs_signing"] is False
    assert entry["reason"] == "certificate is valid"
    assert entry["serial"] == f"{cert.serial_number:X}".rjust(
        len(f"{cert.serial_number:X}") + len(f"{cert.serial_number:X}") % 2, "0"
    )
    assert entry["path"] == f"{host.dir}/web.crt"
    assert entry["not_after_timestamp"] == int(cert.not_valid_after_utc.timestamp())
    assert entry["not_before_timestamp"] == int(cert.not_valid_before_utc.timestamp())
    assert entry["remaining_seconds"] == 23 * 3600
    assert entry["days_left"] == 0
    assert entry["matches_key"] is True
    assert entry["chains_to_trust"] is True
    assert entry["revoked"] is False
    assert entry["subject"] == "CN=web"
    # The certificates themselves, for a controller that checks them (mtls.rollout.revoke);
    # the key stays on the host.
    assert entry["certificate_pem"] == (host.dir / "web.crt").read_text()
    assert "PRIVATE KEY" not in repr(entry)


@pytest.mark.parametrize(
    ("remaining", "days", "status"),
    [
        (timedelta(days=30), 30, "ok"),
        (timedelta(days=29, hours=23), 29, "ok"),  # 0.333 of 90 days is left
        (timedelta(days=29, hours=16), 29, "renew"),  # 0.3296: below the third
        (timedelta(hours=1), 0, "renew"),
        (timedelta(hours=-1), -1, "expired"),
        (timedelta(days=-1, hours=-1), -2, "expired"),
    ],
)
def test_days_left_are_whole_days_rounded_down(host, remaining, days, status):
    lifetime = timedelta(days=90)
    host("web", not_before=NOW + remaining - lifetime, lifetime=lifetime)
    [entry] = _inspect(host.dir, [{"name": "web", "common_name": "web"}])
    assert entry["days_left"] == days
    assert entry["status"] == status


_TEN_MINUTES_LEFT = {"not_before": NOW - timedelta(minutes=110), "lifetime": timedelta(hours=2)}


@pytest.mark.parametrize(
    ("item", "issue", "status", "reason"),
    [
        (
            {"name": "web", "common_name": "web"},
            _TEN_MINUTES_LEFT,
            "renew",
            "below the renewal threshold",
        ),
        (
            {"name": "web", "common_name": "web", "renew_before": "5m"},
            _TEN_MINUTES_LEFT,
            "ok",
            "certificate is valid",
        ),
        ({"name": "web", "common_name": "api"}, {}, "renew", "subject common_name differs"),
        (
            {"name": "web", "common_name": "web", "subject_alt_names": ["DNS:web", "DNS:www"]},
            {},
            "renew",
            "SANs differ: +DNS:www",
        ),
        (
            {"name": "web", "common_name": "web", "profile": "client"},
            {},
            "renew",
            "profile is server, wanted client",
        ),
    ],
)
def test_the_role_s_renewal_rule(host, item, issue, status, reason):
    host("web", **issue)
    [entry] = _inspect(host.dir, [item])
    assert entry["status"] == status
    assert reason in entry["reason"]
    assert entry["needs_signing"] is (status != "ok")


def test_a_certificate_beside_another_key(host):
    host("web")
    (host.dir / "web.key").write_bytes(_key_pem(ec.generate_private_key(ec.SECP256R1())))
    [entry] = _inspect(host.dir, [{"name": "web", "common_name": "web"}])
    assert entry["status"] == "renew"
    assert entry["matches_key"] is False
    assert "certificate does not match key" in entry["reason"]


def test_a_missing_key_and_a_foreign_trust_bundle(host, other_ca):
    host("web")
    (host.dir / "web.key").unlink()
    (host.dir / "ca-bundle.pem").write_bytes(pem(other_ca.root))
    [entry] = _inspect(host.dir, [{"name": "web", "common_name": "web"}])
    assert entry["status"] == "renew"
    assert entry["reason"].startswith(f"private key {host.dir}/web.key is missing")
    assert "does not chain to the trust bundle" in entry["reason"]
    assert entry["matches_key"] is None


def test_without_a_trust_bundle_the_chain_is_not_checked(host):
    host("web")
    (host.dir / "ca-bundle.pem").unlink()
    [entry] = _inspect(host.dir, [{"name": "web", "common_name": "web"}])
    assert entry["status"] == "ok"
    assert entry["chains_to_trust"] is None


def test_missing_unreadable_and_invalid_items(host):
    (host.dir / "broken.crt").write_text("not a certificate")
    entries = _inspect(
        host.dir,
        [
            {"name": "gone", "common_name": "gone"},
            {"name": "broken", "common_name": "broken"},
            {"name": "bad", "common_name": "bad", "subject_alt_names": ["NOPE:x"]},
        ],
    )
    assert [e["status"] for e in entries] == ["missing", "unreadable", "invalid"]
    assert entries[0]["reason"] == f"certificate {host.dir}/gone.crt is missing"
    assert entries[1]["reason"].startswith("certificate unreadable")
    assert entries[2]["reason"].startswith("the item is invalid")
    assert all(e["needs_signing"] and "serial" not in e for e in entries)
    assert all("certificate_pem" not in e for e in entries)


def test_explicit_paths_as_for_people(host):
    host("john-doe", common_name="John Doe", sans=[RFC822Name("john@example.com")], ekus=CLIENT)
    people = host.dir / "people"
    people.mkdir()
    for suffix in ("crt", "key"):
        os.rename(host.dir / f"john-doe.{suffix}", people / f"john-doe.{suffix}")
    item = {
        "name": "john-doe",
        "common_name": "John Doe",
        "subject_alt_names": ["email:john@example.com"],
        "profile": "client",
        "key_path": f"{people}/john-doe.key",
        "cert_path": f"{people}/john-doe.crt",
    }
    [entry] = _inspect(host.dir, [item])
    assert entry["status"] == "ok", entry["reason"]
    assert entry["common_name"] == "John Doe"


def test_revoked_serials_in_nginx_s_form(host):
    cert = host("web")
    hex_serial = report._crypto.serial_hex(cert.serial_number)
    [entry] = _inspect(
        host.dir, [{"name": "web", "common_name": "web"}], revoked_serials=[hex_serial]
    )
    assert entry["revoked"] is True
    assert entry["status"] == "revoked"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"items": [{"common_name": "x"}]}, "items entry 1 needs a name"),
        ({"items": [{"name": "a"}, {"name": "a"}]}, "two items are called 'a'"),
        ({"revoked_serials": ["5a3f07"]}, "revoked_serials: serial must be written as NGINX"),
        ({"renew_before": "soon"}, "renew_before"),
    ],
)
def test_bad_options(params, message):
    with pytest.raises(report.ReportError, match=re.escape(message)):
        report.Options.from_params({"renew_before": "0.33", **params})


# --------------------------------------------------------------------------- textfile

# One sample line of the text format 0.0.4: name{label="value",...} value
SAMPLE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*\} -?[0-9]+$'
)


def _entries(host):
    host("web")
    host("client", ekus=CLIENT)
    items = [
        {"name": "web", "common_name": "web"},
        {"name": "client", "common_name": "client", "profile": "client"},
        {"name": "gone", "common_name": "gone"},
    ]
    return _inspect(host.dir, items)


def test_the_textfile_is_valid_exposition_format(host):
    entries = _entries(host)
    text = report.render_textfile('web-1 "a"\\b', entries)
    assert text.endswith("\n")
    names = set()
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            kind, metric = line.split()[1:3]
            names.add(metric)
            if kind == "TYPE":
                assert line.endswith(" gauge")
            continue
        assert SAMPLE.match(line), line
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert set(families) == names
    hosts = {s.labels["host"] for f in families.values() for s in f.samples}
    assert hosts == {'web-1 "a"\\b'}  # escaped in the file, read back whole


def test_the_textfile_s_values(host):
    entries = _entries(host)
    families = {
        f.name: {s.labels["name"]: s for s in f.samples}
        for f in text_string_to_metric_families(report.render_textfile("web", entries))
    }
    by_name = {e["name"]: e for e in entries}
    assert set(families["mtls_certificate_not_after_seconds"]) == {"web", "client"}
    assert (
        families["mtls_certificate_not_after_seconds"]["web"].value
        == by_name["web"]["not_after_timestamp"]
    )
    assert (
        families["mtls_certificate_not_before_seconds"]["client"].value
        == by_name["client"]["not_before_timestamp"]
    )
    assert {n: s.value for n, s in families["mtls_certificate_present"].items()} == {
        "web": 1,
        "client": 1,
        "gone": 0,
    }
    assert {n: s.value for n, s in families["mtls_certificate_needs_signing"].items()} == {
        "web": 0,
        "client": 0,
        "gone": 1,
    }
    assert {n: s.value for n, s in families["mtls_certificate_revoked"].items()} == {
        "web": 0,
        "client": 0,
        "gone": 0,
    }
    info = families["mtls_certificate_info"]["client"].labels
    assert info == {
        "host": "web",
        "name": "client",
        "common_name": "client",
        "serial": by_name["client"]["serial"],
        "profile": "client",
        "issuer": "CN=Test Intermediate CA",
    }


def test_the_textfile_does_not_depend_on_the_time_of_writing(host, monkeypatch):
    entries = _entries(host)
    later = report.inspect_items(
        _options(
            host.dir,
            [
                {"name": e["name"], "common_name": e["name"], "profile": e.get("profile")}
                for e in entries
            ],
        ),
        now=NOW + timedelta(minutes=10),
    )
    assert report.render_textfile("web", entries) == report.render_textfile("web", later)


def test_no_entries_no_textfile_lines():
    assert report.render_textfile("web", []) == ""


# --------------------------------------------------------------------------- module


@pytest.fixture
def textfile_dir(tmp_path):
    folder = tmp_path / "textfile"
    folder.mkdir()
    return folder


def _module_args(host, textfile_dir, **more):
    return {
        "items": [{"name": "web", "common_name": "web", "notify": ["ignored"]}],
        "certificate_dir": str(host.dir),
        "host": "web",
        "textfile_path": str(textfile_dir / "mtls_certificates.prom"),
        **more,
    }


def test_the_module_in_four_runs(run_module, host, textfile_dir):
    host("web", not_before=NOW.replace(year=2099))  # a fixed verdict whenever the test runs
    target = textfile_dir / "mtls_certificates.prom"
    args = _module_args(host, textfile_dir)

    result = run_module(module, args, check=True)
    assert result["changed"] is True
    assert not target.exists()
    assert result["diff"]["before"] == ""
    assert 'mtls_certificate_not_after_seconds{host="web",name="web"}' in result["diff"]["after"]

    result = run_module(module, args)
    assert result["changed"] is True
    assert target.read_text() == result["diff"]["after"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert os.listdir(textfile_dir) == ["mtls_certificates.prom"]
    [entry] = result["certificates"]
    assert entry["status"] == "renew"  # not valid yet (2099)
    assert "not valid before" in entry["reason"]

    assert run_module(module, args, check=True)["changed"] is False
    assert run_module(module, args)["changed"] is False

    target.chmod(0o600)
    assert run_module(module, args, check=True)["changed"] is True
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert run_module(module, args)["changed"] is True
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_the_module_only_reads_without_a_textfile(run_module, host):
    host("web")
    before = sorted(os.listdir(host.dir))
    result = run_module(
        module, {"items": [{"name": "web", "common_name": "web"}], "certificate_dir": str(host.dir)}
    )
    assert result["changed"] is False
    assert "textfile" not in result
    assert result["certificates"][0]["name"] == "web"
    assert sorted(os.listdir(host.dir)) == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"textfile_path": "/nonexistent/folder/mtls.prom"},
            "folder /nonexistent/folder does not exist",
        ),
        ({"textfile_path": "/tmp/mtls.txt"}, "must end in .prom"),
        ({"host": None}, "missing parameter(s) required by 'textfile_path': host"),
        ({"revoked_serials": ["1234x"]}, "revoked_serials"),
    ],
)
def test_the_module_fails_clearly(run_module, host, textfile_dir, change, message):
    host("web")
    args = {
        k: v for k, v in {**_module_args(host, textfile_dir), **change}.items() if v is not None
    }
    result = run_module(module, args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert os.listdir(textfile_dir) == []
