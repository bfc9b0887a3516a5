# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The people, revocation_targets and certificate_table filters."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.mtls.rollout.plugins.filter.certificate_table import (
    FilterModule as TableFilters,
)
from ansible_collections.mtls.rollout.plugins.filter.people import FilterModule as PeopleFilters
from ansible_collections.mtls.rollout.plugins.filter.revocation_targets import (
    FilterModule as TargetFilters,
)
from ansible_collections.mtls.rollout.plugins.plugin_utils._certificate_table import (
    certificate_table,
)
from ansible_collections.mtls.rollout.plugins.plugin_utils._people import people, person_id
from ansible_collections.mtls.rollout.plugins.plugin_utils._revocation_targets import (
    revocation_targets,
)


def test_filters_are_registered():
    assert PeopleFilters().filters()["people"] is people
    assert TargetFilters().filters()["revocation_targets"] is revocation_targets
    assert TableFilters().filters()["certificate_table"] is certificate_table


# --------------------------------------------------------------------------- people


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("John Doe", "john-doe"),
        ("Zoë Müller", "zoe-muller"),
        ("  Ann-Marie  O'Neil ", "ann-marie-o-neil"),
        ("Dr. J. R. R. Tolkien", "dr-j-r-r-tolkien"),
    ],
)
def test_person_id(name, stem):
    assert person_id(name) == stem


def test_a_person_becomes_a_client_certificate_item_and_a_bundle():
    [john] = people(
        [{"name": "John Doe", "email": "john.doe@example.com", "passphrase": "s3cret"}],
        "/srv/people/",
    )
    assert john["id"] == "john-doe"
    assert john["certificate_item"] == {
        "name": "john-doe",
        "common_name": "John Doe",
        "subject_alt_names": ["email:john.doe@example.com"],
        "profile": "client",
        "key_type": "rsa",
        "key_size": 2048,
        "key_path": "/srv/people/john-doe.key",
        "cert_path": "/srv/people/john-doe.crt",
    }
    assert john["bundle"] == {
        "path": "/srv/people/john-doe.p12",
        "state": "present",
        "owner": "root",
        "group": "root",
    }
    assert john["has_passphrase"] is True
    assert "s3cret" not in repr(john)  # the passphrase never leaves mtls_people


def test_a_person_s_own_settings():
    [ann] = people(
        [
            {
                "name": "Ann",
                "email": "ann@example.com",
                "id": "ann.e",
                "key_type": "ec",
                "duration": "8760h",
                "renew_before": "30d",
                "owner": "ann",
                "group": "staff",
                "bundle": False,
            }
        ]
    )
    item = ann["certificate_item"]
    assert item["name"] == "ann.e"
    assert item["key_type"] == "ec"
    assert "key_size" not in item
    assert (item["duration"], item["renew_before"]) == ("8760h", "30d")
    assert item["key_path"] == "/etc/ssl/mtls/people/ann.e.key"
    assert ann["bundle"] == {
        "path": "/etc/ssl/mtls/people/ann.e.p12",
        "state": "absent",
        "owner": "ann",
        "group": "staff",
    }
    assert ann["has_passphrase"] is False


@pytest.mark.parametrize("value", [None, "", []])
def test_no_people(value):
    assert people(value) == []


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ("John", "mtls_people must be a list"),
        (["John"], "entry 1 must be a mapping"),
        ([{"email": "a@b.c"}], "entry 1 needs a name"),
        ([{"name": "A", "email": "a@b.c", "mail": "x"}], "unknown keys mail"),
        ([{"name": "A"}], "entry 1 (A): email None is not an e-mail address; every person needs"),
        ([{"name": "A", "email": "not-an-address"}], "email 'not-an-address' is not"),
        ([{"name": "Åsa", "email": "a@b.c", "id": "Åsa"}], "id 'Åsa' must be lower-case"),
        ([{"name": "李", "email": "a@b.c"}], "id '' must be lower-case"),
        ([{"name": "A", "email": "a@b.c", "key_type": "dsa"}], "key_type must be one of"),
        ([{"name": "A", "email": "a@b.c", "key_size": 1024}], "key_size must be one of"),
        ([{"name": "A", "email": "a@b.c", "bundle": "no"}], "bundle must be true or false"),
        (
            [{"name": "A B", "email": "a@b.c"}, {"name": "A-B", "email": "c@d.e"}],
            "two people have the id 'a-b'",
        ),
        (
            [{"name": "A", "email": "a@b.c"}, {"name": "A", "email": "c@d.e", "id": "a2"}],
            "two people are called 'A'",
        ),
    ],
)
def test_bad_people_fail_naming_the_entry(entries, message):
    with pytest.raises(AnsibleFilterError) as error:
        people(entries)
    assert message in str(error.value)


def test_the_people_folder_must_be_absolute():
    with pytest.raises(AnsibleFilterError, match="absolute path"):
        people([{"name": "A", "email": "a@b.c"}], "people")


# ------------------------------------------------------------------- revocation_targets


def _entry(name, serial, **more):
    return {"name": name, "serial": serial, "subject": f"CN={name}", "profile": "client", **more}


SCANS = {
    "web": {"certificates": [_entry("web", "0A11", profile="server")]},
    "client": {
        "certificates": [
            _entry("worker", "04D2", not_after="2027-01-01T00:00:00Z"),
            _entry("john-doe", "1234"),
            {
                "name": "spare",
                "path": "/etc/ssl/mtls/spare.crt",
                "status": "missing",
                "reason": "certificate /etc/ssl/mtls/spare.crt is missing",
            },
        ]
    },
}
PEOPLE = people([{"name": "John Doe", "email": "john.doe@example.com"}])
# The items as the inventory defines them (tests/unit/plugins/test_revocation_by_host.py has
# the reports checked against them, and the issuance record).
ITEMS = {
    "web": [{"name": "web", "common_name": "web"}],
    "client": [
        {"name": "worker", "common_name": "worker", "profile": "client"},
        PEOPLE[0]["certificate_item"],
        {"name": "spare", "common_name": "spare", "profile": "client"},
    ],
}


def _targets(scans=None, **kwargs):
    result = revocation_targets(SCANS if scans is None else scans, items=ITEMS, **kwargs)
    return [t["serial"] for t in result["targets"]], result["errors"]


@pytest.mark.parametrize("serial", [1234, "04d2", "0x4d2", "04:D2", "4D2"])
def test_serials_in_any_unambiguous_form(serial):
    assert _targets(serials=[serial]) == (["04D2"], [])


def test_a_single_serial_need_not_be_a_list():
    assert _targets(serials="0A11") == (["0A11"], [])


def test_digits_only_are_taken_when_one_reading_is_in_the_fleet():
    # "1234": decimal is 04D2 (worker), hex is 1234 (john-doe): both in the fleet.
    serials, errors = _targets(serials=["1234"])
    assert serials == []
    assert "could be decimal or hex and both name certificates" in errors[0]
    # "2577" decimal is 0A11 (web); hex 2577 is nobody's.
    assert _targets(serials=["2577"]) == (["0A11"], [])
    serials, errors = _targets(serials=["99"])
    assert serials == [] and "could be decimal or hex:" in errors[0]


def test_each_serial_once_whichever_way_it_was_asked_for():
    assert _targets(serials=[1234, "04:d2", "0x4D2"]) == (["04D2"], [])


@pytest.mark.parametrize("wanted", ["John Doe", "john doe", "john-doe", "JOHN.DOE@example.com"])
def test_a_person_by_name_id_or_email(wanted):
    # The people host does not answer: the issuance record says what to revoke.
    record = [
        {
            "serial": "1234",
            "host": "client",
            "item": "john-doe",
            "subject": "CN=John Doe",
            "not_after": "2999-01-01T00:00:00Z",
            "public_key_sha256": "0" * 64,
        }
    ]
    result = revocation_targets(
        {},
        person=wanted,
        people=PEOPLE,
        people_host="client",
        items=ITEMS,
        issued=record,
        unreachable=["client"],
    )
    assert [(t["host"], t["item"], t["serial"]) for t in result["targets"]] == [
        ("client", "john-doe", "1234")
    ]


def test_an_unknown_serial_is_an_error_unless_allowed():
    serials, errors = _targets(serials=["0xBEEF"])
    assert serials == []
    assert errors[0].startswith(
        "serial BEEF is not the serial of any certificate in the fleet or the issuance record."
    )
    serials, errors = _targets(serials=["0xBEEF"], unreachable=["db"])
    assert "(not asked: db did not answer)" in errors[0]
    result = revocation_targets(SCANS, serials=["0xBEEF"], allow_unknown=True)
    assert result["errors"] == []
    assert result["targets"][0] == {
        "serial": "BEEF",
        "host": None,
        "item": None,
        "subject": None,
        "not_after": None,
        "profile": None,
        "found": False,
        "source": None,
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"host": "client"}, "revoke_host and revoke_item go together"),
        ({"item": "worker"}, "revoke_host and revoke_item go together"),
        (
            {"host": "client", "item": "nope"},
            "client has no certificate item 'nope' (its items: worker, john-doe, spare)",
        ),
        (
            {"host": "db", "item": "x"},
            "item x of db: the inventory's items of db could not be read, and the issuance",
        ),
        (
            {"host": "client", "item": "x"},
            "client has no certificate item 'x' (its items: worker, john-doe, spare)",
        ),
        (
            {"host": "client", "item": "worker", "scans": {}},
            "item worker of client: client could not be read, and the issuance record holds no"
            " unexpired certificate of it (there is no issuance record): nothing to revoke",
        ),
        (
            {"host": "client", "item": "worker", "scans": {}, "unreachable": ["client"]},
            "item worker of client: client did not answer, and the issuance record holds no",
        ),
        (
            {"host": "client", "item": "spare"},
            "there is no certificate to revoke at /etc/ssl/mtls/spare.crt",
        ),
        (
            {"person": "Nobody", "people": PEOPLE},
            "no person 'Nobody' in mtls_people (people: John Doe)",
        ),
        ({"person": "John Doe", "people": PEOPLE}, "mtls_people_host is not set"),
        ({"serials": ["zz"]}, "serial must be a certificate serial number"),
        ({"serials": [True]}, "serial must be a certificate serial number"),
        ({}, "nothing to revoke"),
    ],
)
def test_what_cannot_be_revoked_is_an_error(kwargs, message):
    serials, errors = _targets(**kwargs)
    assert serials == [] or kwargs.get("serials")
    assert any(message in error for error in errors), errors


def test_targets_need_scans_by_host():
    with pytest.raises(AnsibleFilterError):
        revocation_targets([])


# --------------------------------------------------------------------- certificate_table


def _row(host, name, not_after, ts, days, status="ok", serial="0A", cn=None, reason=None):
    return {
        "host": host,
        "name": name,
        "common_name": cn or name,
        "serial": serial,
        "not_after": not_after,
        "not_after_timestamp": ts,
        "days_left": days,
        "status": status,
        "reason": reason or "certificate is valid",
    }


def test_the_table_is_sorted_by_expiry_with_unknown_expiry_first():
    entries = [
        _row("web", "web", "2027-03-01T10:00:00Z", 300, 89),
        _row("client", "john-doe", "2026-12-31T23:59:00Z", 100, 29, cn="John Doe", serial="5A3F07"),
        {
            "host": "client",
            "name": "spare",
            "common_name": "spare",
            "status": "missing",
            "reason": "certificate /etc/ssl/mtls/spare.crt is missing",
            "needs_signing": True,
        },
        _row(
            "api",
            "api",
            "2026-12-31T23:59:00Z",
            100,
            29,
            status="renew",
            reason="certificate expires in 29d, below the renewal threshold",
        ),
    ]
    lines = certificate_table(entries)
    assert lines[0].split("  ")[0] == "EXPIRES (UTC)"
    body = lines[1:5]
    assert body[0].startswith("-")  # missing: no expiry, first
    assert "spare" in body[0] and "MISSING" in body[0]
    assert "api" in body[1] and "RENEW" in body[1]  # same expiry as john-doe: by host
    assert "john-doe" in body[2] and "John Doe" in body[2] and "5A3F07" in body[2]
    assert body[2].startswith("2026-12-31 23:59  29")
    assert "web" in body[3]
    # Columns line up: every cell starts where its header does.
    header = lines[0]
    for column in ("DAYS", "STATUS", "HOST", "NAME", "COMMON NAME", "SERIAL"):
        start = header.index(column)
        assert all(row[start - 2 : start] == "  " for row in body if len(row) > start), column
    assert lines[5] == ""
    assert lines[6] == "client spare: missing: certificate /etc/ssl/mtls/spare.crt is missing"
    assert lines[7] == "api api: renew: certificate expires in 29d, below the renewal threshold"
    assert len(lines) == 8


def test_a_revoked_certificate_says_so_and_why_it_needs_signing_too():
    revoked = _row("client", "old", "2027-01-01T00:00:00Z", 1, 30, status="revoked")
    lines = certificate_table([revoked])
    assert lines[-1] == "client old: revoked: its serial is on the revocation list"
    lines = certificate_table([dict(revoked, needs_signing=True, reason="SANs differ: +DNS:x")])
    assert lines[-1] == (
        "client old: revoked: its serial is on the revocation list; SANs differ: +DNS:x"
    )


def test_an_empty_fleet():
    assert certificate_table([])[1] == "(no certificates)"


def test_the_table_needs_entries():
    with pytest.raises(AnsibleFilterError):
        certificate_table("not a list")
