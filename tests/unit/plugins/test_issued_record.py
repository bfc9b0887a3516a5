# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The issuance record (plugins/plugin_utils/_issued_record.py): what an entry holds, and that
writers in parallel processes lose nothing, replace the file atomically, and fail only the
certificates they could not record."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from mtls_testlib import NOW, pem

from ansible_collections.mtls.rollout.plugins.filter.issued_certificates import (
    FilterModule,
    issued_certificates,
)
from ansible_collections.mtls.rollout.plugins.module_utils._crypto import serial_hex
from ansible_collections.mtls.rollout.plugins.plugin_utils import _issued_record as record

URL = "https://ca.example.test:9000"


def _entry(serial: int, host: str = "h", item: str = "i", not_after=NOW + timedelta(days=1)):
    return {
        "serial": serial_hex(serial),
        "host": host,
        "item": item,
        "subject": f"CN={item}",
        "subject_alt_names": [f"DNS:{item}"],
        "profile": "client",
        "public_key_sha256": f"{serial:064x}",
        "not_after": not_after.strftime(record.TIME_FORMAT),
        "ca_url": URL,
        "issued_at": NOW.strftime(record.TIME_FORMAT),
    }


def _read(path: str) -> list[dict]:
    with open(path) as handle:
        return record.parse(handle.read(), path)


def test_an_entry_holds_the_public_facts_of_the_certificate(test_ca):
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName("worker"), x509.RFC822Name("ops@example.test")]
    leaf = test_ca.issue(
        key.public_key(), "worker", sans=sans, ekus=[ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    chain = (pem(leaf) + pem(test_ca.intermediate)).decode()
    entry = record.entry_for("web1", "worker", chain, URL, NOW)
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert entry == {
        "serial": serial_hex(leaf.serial_number),
        "host": "web1",
        "item": "worker",
        "subject": "CN=worker",
        "subject_alt_names": ["DNS:worker", "email:ops@example.test"],
        "profile": "client",
        "public_key_sha256": hashlib.sha256(spki).hexdigest(),
        "not_after": leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ca_url": URL,
        "issued_at": "2026-11-26T12:00:00Z",
    }


def test_a_record_is_written_read_back_and_not_rewritten_for_nothing(tmp_path):
    path = str(tmp_path / "issued-certificates.yml")
    assert record.record(path, [_entry(1), _entry(2)], NOW) == 2
    text = (tmp_path / "issued-certificates.yml").read_text()
    assert text.startswith(record.HEADER)
    assert "PRIVATE" not in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert issued_certificates(text, path) == [_entry(1), _entry(2)]
    os.chmod(path, 0o640)
    before = os.stat(path)
    # The same entries again: nothing new, the file is not replaced.
    assert record.record(path, [_entry(2)], NOW) == 0
    assert os.stat(path).st_ino == before.st_ino
    # A new one is appended, the file replaced with its mode kept, and no temporary left.
    assert record.record(path, [_entry(3)], NOW) == 1
    assert [e["serial"] for e in _read(path)] == ["01", "02", "03"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".issued-certificates.yml.lock",
        "issued-certificates.yml",
    ]
    assert FilterModule().filters()["issued_certificates"] is issued_certificates


def test_entries_are_dropped_30_days_after_they_expired(tmp_path):
    path = str(tmp_path / "issued.yml")
    old = _entry(1, not_after=NOW - timedelta(days=30, seconds=1))
    recent = _entry(2, not_after=NOW - timedelta(days=29))
    record.record(path, [old, recent], NOW - timedelta(days=40))
    assert len(_read(path)) == 2
    record.record(path, [_entry(3)], NOW)
    assert [e["serial"] for e in _read(path)] == ["02", "03"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("issued_certificates: {}\n", "must be a mapping with a list under issued_certificates"),
        ("- a\n", "must be a mapping with a list under issued_certificates"),
        ("issued_certificates: [1]\n", "entry 1 must be a mapping"),
        ("issued_certificates:\n  - {serial: 1234}\n", "entry 1: serial must be written as NGINX"),
        ("issued_certificates: [\n", "is not valid YAML"),
    ],
)
def test_a_malformed_record_is_refused_naming_the_entry(tmp_path, text, message):
    path = tmp_path / "issued.yml"
    path.write_text(text)
    with pytest.raises(record.RecordError, match=message) as error:
        record.record(str(path), [_entry(1)], NOW)
    assert str(path) in str(error.value)
    assert path.read_text() == text  # never overwritten


def test_a_duplicate_or_a_missing_field_is_refused():
    twice = record.render([_entry(1)]) + "  - " + record.render([_entry(1)]).split("  - ", 1)[1]
    with pytest.raises(record.RecordError, match="entry 2: serial 01 is listed twice"):
        record.parse(twice, "issued.yml")
    broken = dict(_entry(1), public_key_sha256="nope")
    with pytest.raises(record.RecordError, match="entry 1: public_key_sha256 must be 64"):
        record.parse(record.render([broken]), "issued.yml")
    assert record.parse("", "issued.yml") == [] and record.parse(None, "x") == []


def test_a_folder_that_does_not_exist_or_a_relative_path_is_an_error(tmp_path):
    with pytest.raises(record.RecordError, match=r"nowhere does not exist"):
        record.record(str(tmp_path / "nowhere" / "issued.yml"), [_entry(1)], NOW)
    with pytest.raises(record.RecordError, match="must be an absolute path"):
        record.record("issued.yml", [_entry(1)], NOW)


def _writer(path: str, first: int, count: int) -> None:
    for serial in range(first, first + count):
        record.record(path, [_entry(serial, host=f"h{first}")], NOW)


def _reader(path: str, stop, errors) -> None:
    while not stop.is_set():
        try:
            with open(path) as handle:
                record.parse(handle.read(), path)
        except FileNotFoundError:
            pass
        except record.RecordError as exc:  # a half-written file
            errors.put(str(exc))


def test_concurrent_writers_in_processes_lose_no_entry_and_readers_never_see_half(tmp_path):
    path = str(tmp_path / "issued.yml")
    context = multiprocessing.get_context("fork")
    stop, errors = context.Event(), context.Queue()
    reader = context.Process(target=_reader, args=(path, stop, errors))
    reader.start()
    writers = [
        context.Process(target=_writer, args=(path, first, 15)) for first in (1, 101, 201, 301)
    ]
    for process in writers:
        process.start()
    for process in writers:
        process.join(120)
    stop.set()
    reader.join(30)
    assert [process.exitcode for process in writers] == [0, 0, 0, 0]
    assert errors.empty()
    serials = {e["serial"] for e in _read(path)}
    wanted = {serial_hex(n) for first in (1, 101, 201, 301) for n in range(first, first + 15)}
    assert serials == wanted
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_held_lock_is_waited_for_then_refused(tmp_path):
    path = str(tmp_path / "issued.yml")
    refused = pytest.raises(record.RecordError, match=r"held the lock .* for more than 0 s")
    with record._locked(path, 1.0), refused:
        record.record(path, [_entry(1)], NOW, wait=0.1)
    assert not os.path.exists(path)


# ------------------------------------------------------------------- the signing step


def _outcomes(test_ca, *requests):
    outcomes = {}
    for host, item in requests:
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = test_ca.issue(key.public_key(), item)
        outcomes.setdefault(host, {})[item] = {
            "ok": True,
            "fullchain": (pem(leaf) + pem(test_ca.intermediate)).decode(),
            "serial_hex": serial_hex(leaf.serial_number),
        }
    return outcomes


def test_a_failed_write_fails_only_the_certificates_of_that_record(tmp_path, test_ca):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    good = str(tmp_path / "issued.yml")
    files = {"h1": str(blocked / "issued.yml"), "h2": good, "h3": good, "h4": ""}
    outcomes = _outcomes(test_ca, ("h1", "web"), ("h2", "web"), ("h3", "web"), ("h4", "web"))
    outcomes["h3"]["api"] = {"ok": False, "msg": "refused by the CA"}
    issued = [(host, "web", URL) for host in ("h1", "h2", "h3", "h4")] + [("h3", "api", URL)]
    serial = outcomes["h1"]["web"]["serial_hex"]
    record.record_outcomes(outcomes, issued, files, NOW)

    failed = outcomes["h1"]["web"]
    assert failed["ok"] is False and failed["unrecorded"] is True
    assert failed["msg"].startswith(f"step-ca issued it (serial {serial}), but it could not")
    assert f"could not be added to the issuance record {blocked}/issued.yml" in failed["msg"]
    assert "It was not installed" in failed["msg"]
    for host in ("h2", "h3", "h4"):
        assert outcomes[host]["web"]["ok"] is True
    assert outcomes["h3"]["api"] == {"ok": False, "msg": "refused by the CA"}
    # h2 and h3 are in their record, written once; h4 has none, and the refused item is not.
    written = _read(good)
    assert [(e["host"], e["item"]) for e in written] == [("h2", "web"), ("h3", "web")]
    assert [e["serial"] for e in written] == [
        outcomes["h2"]["web"]["serial_hex"],
        outcomes["h3"]["web"]["serial_hex"],
    ]


def test_an_unreadable_certificate_fails_only_itself(tmp_path, test_ca):
    path = str(tmp_path / "issued.yml")
    outcomes = _outcomes(test_ca, ("h1", "web"), ("h2", "web"))
    outcomes["h1"]["web"]["fullchain"] = "garbage"
    record.record_outcomes(
        outcomes, [("h1", "web", URL), ("h2", "web", URL)], {"h1": path, "h2": path}, NOW
    )
    assert outcomes["h1"]["web"]["ok"] is False
    assert "the issued certificate of web is unreadable" in outcomes["h1"]["web"]["msg"]
    assert outcomes["h2"]["web"]["ok"] is True
    assert [e["host"] for e in _read(path)] == ["h2"]


def test_the_playbooks_find_the_record_where_the_role_writes_it():
    """playbooks/vars/fleet.yml repeats the role's default (a role default is not visible
    outside the role): the two must stay the same expression."""
    repo = Path(__file__).resolve().parents[3]
    defaults = yaml.safe_load((repo / "roles/certificate/defaults/main.yml").read_text())
    fleet = yaml.safe_load((repo / "playbooks/vars/fleet.yml").read_text())
    role_default = defaults["certificate_issued_file"].strip()
    assert role_default.startswith("{{ ") and role_default.endswith(" }}")
    expression = role_default[3:-3]
    assert fleet["__mtls_issued_file"].strip() == (
        "{{ certificate_issued_file | default(" + expression + ") }}"
    )
