# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Revocation by host and item (the revocation_targets filter) against a host that lies.

A host's report is checked on the controller: its certificate must chain to the root pinned
for the host, carry exactly the item's names and profile as the inventory defines them, and,
when the issuance record holds certificates of the item, one of their public keys. What the
record holds for the item is revoked whatever the host says, and a host that does not answer
is revoked from the record alone.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from mtls_testlib import NOW, make_ca, pem

from ansible_collections.mtls.rollout.plugins.module_utils._crypto import serial_hex
from ansible_collections.mtls.rollout.plugins.plugin_utils._issued_record import entry_for
from ansible_collections.mtls.rollout.plugins.plugin_utils._people import people
from ansible_collections.mtls.rollout.plugins.plugin_utils._revocation_targets import (
    revocation_targets,
)

URL = "https://ca.example.test:9000"
CLIENT = [ExtendedKeyUsageOID.CLIENT_AUTH]
CA = make_ca("Fleet")
OTHER = make_ca("Other")
PEOPLE = people([{"name": "John Doe", "email": "john.doe@example.com"}])
ITEMS = {
    "laptop": [
        {
            "name": "john",
            "common_name": "john",
            "subject_alt_names": ["DNS:john"],
            "profile": "client",
        },
        *[person["certificate_item"] for person in PEOPLE],
    ],
    "desk": [{"name": "worker", "common_name": "worker", "profile": "client"}],
}
ANCHORS = {host: [pem(CA.root).decode()] for host in ITEMS}


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _issue(key, common_name="john", sans=None, ekus=None, ca=CA, **more):
    sans = [x509.DNSName(common_name)] if sans is None else sans
    leaf = ca.issue(key.public_key(), common_name, sans=sans, ekus=ekus or CLIENT, **more)
    return leaf, (pem(leaf) + pem(ca.intermediate)).decode()


def _report(name, chain_pem):
    leaf = x509.load_pem_x509_certificate(chain_pem.encode())
    # What a forged report may say about the certificate is ignored; only the PEM counts.
    return {
        "certificates": [
            {
                "name": name,
                "serial": serial_hex(leaf.serial_number),
                "subject": "CN=whatever the host likes",
                "certificate_pem": chain_pem,
            }
        ]
    }


def _record(host, item, chain_pem, issued_at=NOW - timedelta(hours=1)):
    return entry_for(host, item, chain_pem, URL, issued_at)


def _resolve(scans, issued, host="laptop", item="john", **more):
    return revocation_targets(
        scans,
        host=host,
        item=item,
        items=ITEMS,
        issued=issued,
        anchors=ANCHORS,
        now=NOW,
        **more,
    )


def _serials(result):
    return [(target["serial"], target["source"]) for target in result["targets"]]


@pytest.fixture(scope="module")
def fleet():
    """john's certificate on the laptop and worker's on the desk, both in the record."""
    john_key, worker_key = _key(), _key()
    john, john_pem = _issue(john_key)
    worker, worker_pem = _issue(worker_key, "worker")
    return {
        "john": (john, john_pem, john_key),
        "worker": (worker, worker_pem, worker_key),
        "record": [_record("laptop", "john", john_pem), _record("desk", "worker", worker_pem)],
    }


def test_an_honest_report_is_revoked_once_with_the_recorded_serial(fleet):
    john, john_pem, _k = fleet["john"]
    result = _resolve({"laptop": _report("john", john_pem)}, fleet["record"])
    assert result["targets"] == [
        {
            "serial": serial_hex(john.serial_number),
            "host": "laptop",
            "item": "john",
            "subject": "CN=john",
            "not_after": john.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "profile": "client",
            "found": True,
            "source": "host",
        }
    ]
    assert (result["errors"], result["refused"], result["warnings"]) == ([], [], [])


def test_a_host_reporting_another_host_s_certificate_revokes_its_own_not_the_other(fleet):
    john, _john_pem, _k = fleet["john"]
    worker, worker_pem, _k = fleet["worker"]
    # The laptop puts the desk's certificate (public: it saw it in a handshake) at john's path.
    result = _resolve({"laptop": _report("john", worker_pem)}, fleet["record"])
    assert _serials(result) == [(serial_hex(john.serial_number), "record")]
    assert serial_hex(worker.serial_number) not in {t["serial"] for t in result["targets"]}
    [refusal] = result["refused"]
    assert refusal.startswith(
        f"item john of laptop: the certificate laptop reports (serial"
        f" {serial_hex(worker.serial_number)}, CN=worker) was not revoked: its subject is"
        " 'CN=worker', wanted CN=john; its SANs differ from the item: "
    )
    assert "its public key is none of the keys the issuance record holds" in refusal
    assert result["errors"] == []


def test_the_items_names_under_another_ca_are_refused(fleet):
    john, _pem, john_key = fleet["john"]
    # Same key, same names, same profile: only the issuer differs.
    _forged, forged_pem = _issue(john_key, ca=OTHER)
    result = _resolve({"laptop": _report("john", forged_pem)}, fleet["record"])
    assert _serials(result) == [(serial_hex(john.serial_number), "record")]
    [refusal] = result["refused"]
    assert "was not revoked: it does not chain to the root pinned for laptop: no issuer" in refusal
    assert "subject" not in refusal and "public key" not in refusal


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        (
            {"common_name": "john", "sans": [x509.DNSName("john"), x509.DNSName("bank.test")]},
            "its SANs differ from the item: -DNS:bank.test",
        ),
        ({"common_name": "johnny"}, "its subject is 'CN=johnny', wanted CN=john"),
        (
            {"ekus": [ExtendedKeyUsageOID.SERVER_AUTH]},
            "its extended key usage is serverAuth, wanted client (clientAuth only)",
        ),
    ],
)
def test_a_certificate_with_other_names_or_profile_is_refused(fleet, kwargs, reason):
    john, _pem, john_key = fleet["john"]
    _other, other_pem = _issue(john_key, **kwargs)
    result = _resolve({"laptop": _report("john", other_pem)}, fleet["record"])
    assert _serials(result) == [(serial_hex(john.serial_number), "record")]
    [refusal] = result["refused"]
    assert reason in refusal


def test_an_old_own_certificate_revokes_every_recorded_serial(fleet):
    old_key, new_key = _key(), _key()
    old, old_pem = _issue(old_key, lifetime=timedelta(days=30))
    newer, newer_pem = _issue(new_key, not_before=NOW - timedelta(minutes=10))
    expired, expired_pem = _issue(old_key, not_before=NOW - timedelta(days=3))
    record = [
        _record("laptop", "john", expired_pem, NOW - timedelta(days=3)),
        _record("laptop", "john", old_pem, NOW - timedelta(days=1)),
        _record("laptop", "john", newer_pem, NOW - timedelta(minutes=10)),
    ]
    # The laptop shows the old certificate and keeps the newer one hidden.
    result = _resolve({"laptop": _report("john", old_pem)}, record)
    assert _serials(result) == [
        (serial_hex(old.serial_number), "host"),
        (serial_hex(newer.serial_number), "record"),
    ]
    assert serial_hex(expired.serial_number) not in {t["serial"] for t in result["targets"]}
    assert (result["refused"], result["warnings"], result["errors"]) == ([], [], [])


def test_an_own_certificate_with_a_key_the_record_does_not_hold_is_refused(fleet):
    john, _pem, _k = fleet["john"]
    # Names and CA are right, the key is not one the controller ever had signed for john
    # (a certificate made on the side, or by a renewal timer with rekey).
    unknown, unknown_pem = _issue(_key())
    result = _resolve({"laptop": _report("john", unknown_pem)}, fleet["record"])
    assert _serials(result) == [(serial_hex(john.serial_number), "record")]
    [refusal] = result["refused"]
    assert refusal.endswith(
        "was not revoked: its public key is none of the keys the issuance record holds for this"
        " item (another host's certificate, or a key made since the last signing by the role)"
    )
    assert serial_hex(unknown.serial_number) in refusal


@pytest.mark.parametrize("unreachable", [["laptop"], []])
def test_a_host_that_does_not_answer_is_revoked_from_the_record(fleet, unreachable):
    john, _pem, _k = fleet["john"]
    result = _resolve({"desk": {"certificates": []}}, fleet["record"], unreachable=unreachable)
    assert _serials(result) == [(serial_hex(john.serial_number), "record")]
    state = "did not answer" if unreachable else "could not be read"
    [warning] = result["warnings"]
    assert warning.startswith(
        f"item john of laptop: laptop {state}, so its current certificate could not be checked;"
        f" revoking what the issuance record holds for it ({serial_hex(john.serial_number)})."
    )
    assert "renewal timer" in warning
    assert (result["errors"], result["refused"]) == ([], [])


@pytest.mark.parametrize("issued", [None, []])
def test_a_host_that_does_not_answer_without_a_record_is_an_error(issued):
    result = _resolve({}, issued, unreachable=["laptop"])
    assert result["targets"] == []
    assert result["errors"] == [
        "item john of laptop: laptop did not answer, and the issuance record holds no unexpired"
        " certificate of it (there is no issuance record): nothing to revoke"
    ]


@pytest.mark.parametrize("issued", [None, [], "desk only"])
def test_without_a_record_of_the_item_the_report_is_checked_without_its_key(fleet, issued):
    john, john_pem, _k = fleet["john"]
    record = fleet["record"][1:] if issued == "desk only" else issued
    result = _resolve({"laptop": _report("john", john_pem)}, record)
    assert _serials(result) == [(serial_hex(john.serial_number), "host")]
    [warning] = result["warnings"]
    suffix = "" if issued == "desk only" else " (there is no issuance record)"
    assert warning.startswith(
        f"item john of laptop: the issuance record holds no certificate of it{suffix}, so the"
        " certificate laptop reports was checked for its CA and names but not for its key."
    )
    # Still checked for its CA and names: another host's certificate is refused.
    _worker, worker_pem, _k = fleet["worker"]
    result = _resolve({"laptop": _report("john", worker_pem)}, record)
    assert result["targets"] == []
    assert "its subject is 'CN=worker'" in result["refused"][0]
    assert result["errors"] == []


def test_a_report_without_the_item_or_with_two_is_refused(fleet):
    john, john_pem, _k = fleet["john"]
    twice = {"certificates": _report("john", john_pem)["certificates"] * 2}
    for scan, count in (({"certificates": []}, 0), (twice, 2)):
        result = _resolve({"laptop": scan}, fleet["record"])
        assert _serials(result) == [(serial_hex(john.serial_number), "record")]
        assert result["refused"] == [
            f"item john of laptop: laptop reported {count} certificates for it instead of one;"
            " none of them was revoked"
        ]


def test_a_serial_without_its_certificate_is_refused(fleet):
    john, _pem, _k = fleet["john"]
    worker, _wpem, _k = fleet["worker"]
    scan = {"certificates": [{"name": "john", "serial": serial_hex(worker.serial_number)}]}
    result = _resolve({"laptop": scan}, fleet["record"])
    assert _serials(result) == [(serial_hex(john.serial_number), "record")]
    assert result["refused"][0].endswith("was not revoked: it sent no certificate (PEM) to check")


def test_no_certificate_on_the_host_revokes_the_recorded_ones(fleet):
    john, _pem, _k = fleet["john"]
    scan = {
        "certificates": [
            {
                "name": "john",
                "path": "/etc/ssl/mtls/john.crt",
                "status": "missing",
                "reason": "gone",
            }
        ]
    }
    result = _resolve({"laptop": scan}, fleet["record"])
    assert _serials(result) == [(serial_hex(john.serial_number), "record")]
    assert result["warnings"] == [
        "item john of laptop: laptop holds no certificate at /etc/ssl/mtls/john.crt (gone);"
        f" revoking what the issuance record holds for it ({serial_hex(john.serial_number)})"
    ]
    result = _resolve({"laptop": scan}, [])
    assert result["errors"] == [
        "item john of laptop: there is no certificate to revoke at /etc/ssl/mtls/john.crt (gone)"
    ]


def test_the_inventory_not_the_report_decides_which_items_exist(fleet):
    _john, john_pem, _k = fleet["john"]
    # The report names an item the inventory does not give the host.
    scan = {"certificates": [dict(_report("john", john_pem)["certificates"][0], name="ghost")]}
    result = _resolve({"laptop": scan}, fleet["record"], item="ghost")
    assert result["errors"] == [
        "laptop has no certificate item 'ghost' (its items: john, john-doe)"
    ]
    assert result["targets"] == []


def test_no_pinned_root_means_nothing_reported_is_revoked(fleet):
    john, john_pem, _k = fleet["john"]
    result = revocation_targets(
        {"laptop": _report("john", john_pem)},
        host="laptop",
        item="john",
        items=ITEMS,
        issued=fleet["record"],
        anchors={},
        now=NOW,
    )
    assert _serials(result) == [(serial_hex(john.serial_number), "record")]
    assert "no root is pinned for laptop" in result["refused"][0]


def test_a_person_is_checked_the_same_way_on_the_people_host(fleet):
    key = _key()
    sans = [x509.RFC822Name("john.doe@example.com")]
    john_doe, john_doe_pem = _issue(key, "John Doe", sans=sans)
    record = [_record("laptop", "john-doe", john_doe_pem)]
    kwargs = {"person": "John Doe", "people": PEOPLE, "people_host": "laptop"}
    result = revocation_targets(
        {"laptop": _report("john-doe", john_doe_pem)},
        items=ITEMS,
        issued=record,
        anchors=ANCHORS,
        now=NOW,
        **kwargs,
    )
    assert _serials(result) == [(serial_hex(john_doe.serial_number), "host")]
    # The people host shows john's machine certificate for John Doe instead.
    _john, john_pem, _k = fleet["john"]
    result = revocation_targets(
        {"laptop": _report("john-doe", john_pem)},
        items=ITEMS,
        issued=record,
        anchors=ANCHORS,
        now=NOW,
        **kwargs,
    )
    assert _serials(result) == [(serial_hex(john_doe.serial_number), "record")]
    assert result["refused"][0].startswith("John Doe's certificate: the certificate laptop reports")


def test_a_serial_the_record_holds_is_revoked_as_the_record_says(fleet):
    john, _pem, _k = fleet["john"]
    # The desk claims john's serial as its own worker certificate: the record says whose it is.
    scans = {
        "desk": {"certificates": [{"name": "worker", "serial": serial_hex(john.serial_number)}]}
    }
    result = revocation_targets(
        scans, serials=[f"0x{john.serial_number:x}"], issued=fleet["record"]
    )
    [target] = result["targets"]
    assert (target["host"], target["item"], target["source"]) == ("laptop", "john", "report")
    # No host holds it any more; the record still knows it.
    result = revocation_targets({}, serials=[john.serial_number], issued=fleet["record"])
    assert [(t["host"], t["item"], t["source"]) for t in result["targets"]] == [
        ("laptop", "john", "record")
    ]
    assert result["errors"] == []


def test_a_host_whose_items_could_not_be_taken_is_revoked_from_the_record(fleet):
    john, john_pem, _k = fleet["john"]
    # Refused for its facts before anything was read: its report (if any) is not looked at.
    result = revocation_targets(
        {"laptop": _report("john", john_pem)},
        host="laptop",
        item="john",
        items={"desk": ITEMS["desk"]},
        issued=fleet["record"],
        anchors=ANCHORS,
        now=NOW,
    )
    assert _serials(result) == [(serial_hex(john.serial_number), "record")]
    assert result["warnings"][0].startswith(
        "item john of laptop: the inventory's items of laptop could not be read"
    )
    assert (result["errors"], result["refused"]) == ([], [])
