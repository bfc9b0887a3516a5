# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The revocation list's reader and writer (revocation_list, revocation_merge filters),
the serial reader behind them, and the deny list the nginx_mtls role renders from it."""

from __future__ import annotations

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.mtls.rollout.plugins.filter.revocation_list import (
    FilterModule as ListFilters,
)
from ansible_collections.mtls.rollout.plugins.filter.revocation_merge import (
    FilterModule as MergeFilters,
)
from ansible_collections.mtls.rollout.plugins.module_utils._crypto import (
    CryptoError,
    read_serial_hex,
    serial_hex,
)
from ansible_collections.mtls.rollout.plugins.plugin_utils._revocation_list import (
    HEADER,
    dump_revocation_list,
    merge_revocation_list,
    parse_revocation_list,
)

ENTRY = {
    "serial": "5A3F07",
    "subject": "CN=John Doe",
    "reason": "laptop stolen",
    "reason_code": 1,
    "revoked_at": "2026-12-01T10:00:00Z",
    "not_after": "2027-12-01T10:00:00Z",
    "host": "client",
    "item": "john-doe",
}


def test_filters_are_registered():
    assert ListFilters().filters()["revocation_list"] is parse_revocation_list
    assert MergeFilters().filters()["revocation_merge"] is merge_revocation_list


# ----------------------------------------------------------------------- read_serial_hex


@pytest.mark.parametrize("number", [1, 0x7F, 0x80, 0xABC, 0x1234, 2**159 - 1])
def test_read_serial_hex_inverts_serial_hex(number):
    assert read_serial_hex(serial_hex(number)) == number


def test_digits_only_are_hex_in_the_written_form():
    # "1234" as NGINX writes it is 0x1234, never decimal 1234.
    assert read_serial_hex("1234") == 0x1234


@pytest.mark.parametrize(
    "value",
    ["abc", "5a3f07", "ABC", "00ABC0", "0x1234", "12:34", "", " ", "00", 1234, None, "XYZ"],
)
def test_read_serial_hex_refuses_every_other_form(value):
    with pytest.raises(CryptoError):
        read_serial_hex(value)


# ----------------------------------------------------------------------- reading


@pytest.mark.parametrize(
    "text", [None, "", "   \n", "# only a comment\n", "revoked_certificates:\n"]
)
def test_no_file_or_an_empty_one_is_an_empty_list(text):
    assert parse_revocation_list(text) == []


def test_the_written_file_reads_back_the_same():
    text = dump_revocation_list([ENTRY, {"serial": "1234"}])
    assert text.startswith(HEADER)
    assert parse_revocation_list(text) == [ENTRY, {"serial": "1234"}]
    # Every serial is a quoted string, so no YAML reader takes "1234" for a number.
    assert '  - serial: "1234"' in text
    assert yaml.safe_load(text)["revoked_certificates"][1]["serial"] == "1234"


def test_hand_written_entries_are_read():
    text = "revoked_certificates:\n  - serial: 'DE7A'\n    comment: ticket SEC-1\n"
    assert parse_revocation_list(text) == [{"serial": "DE7A", "comment": "ticket SEC-1"}]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("revoked_certificates: [\n", "is not valid YAML"),
        ("- serial: 'AB'\n", "must be a mapping with the one key revoked_certificates"),
        ("revoked: []\n", "must be a mapping with the one key revoked_certificates"),
        ("revoked_certificates: {serial: AB}\n", "revoked_certificates must be a list"),
        ("revoked_certificates: [AB]\n", "entry 1 must be a mapping with a serial"),
        ("revoked_certificates: [{serail: AB}]\n", "entry 1 has unknown keys serail"),
        # An unquoted number: YAML reads 1234 as an integer; hex or decimal? Refused.
        ("revoked_certificates: [{serial: 1234}]\n", "entry 1: serial must be written as NGINX"),
        ("revoked_certificates: [{serial: 'ab'}]\n", "entry 1: serial must be written as NGINX"),
        ("revoked_certificates: [{serial: '0x0AB'}]\n", "entry 1: serial must be written as NGINX"),
        ("revoked_certificates: [{serial: '0A:B1'}]\n", "entry 1: serial must be written as NGINX"),
        (
            "revoked_certificates: [{serial: 'AB'}, {serial: 'CD'}, {serial: 'AB'}]\n",
            "entry 3: serial AB is already entry 1",
        ),
    ],
)
def test_a_malformed_list_fails_naming_the_file_and_the_entry(text, message):
    with pytest.raises(AnsibleFilterError) as error:
        parse_revocation_list(text, "/inv/revoked-certificates.yml")
    assert str(error.value).startswith("/inv/revoked-certificates.yml: ")
    assert message in str(error.value)


# ----------------------------------------------------------------------- merging


def test_merge_into_no_file_writes_the_header_and_the_entry():
    text = merge_revocation_list("", [dict(ENTRY, serial="0x5a3f07")])
    assert text.startswith(HEADER)
    assert parse_revocation_list(text) == [ENTRY]


def test_merge_takes_any_serial_form_and_keeps_each_serial_once():
    text = merge_revocation_list(
        "", [{"serial": 1234}, {"serial": "04:d2"}, {"serial": "0x4D2"}, {"serial": "ABCD"}]
    )
    assert [e["serial"] for e in parse_revocation_list(text)] == ["04D2", "ABCD"]


def test_merge_keeps_the_first_entry_of_a_serial_and_appends_new_ones_in_order():
    first = merge_revocation_list("", [ENTRY])
    again = dict(ENTRY, reason="another reason", revoked_at="2030-01-01T00:00:00Z")
    text = merge_revocation_list(first, [again, {"serial": "0BEEF0", "subject": "CN=b"}])
    entries = parse_revocation_list(text)
    assert entries[0] == ENTRY
    assert entries[1] == {"serial": "0BEEF0", "subject": "CN=b"}


@pytest.mark.parametrize("additions", [[], None, [{"serial": "5A3F07"}], [{"serial": 0x5A3F07}]])
def test_merge_with_nothing_new_returns_the_text_byte_for_byte(additions):
    hand_written = "# my notes\nrevoked_certificates:\n  - {serial: '5A3F07', comment: x}\n"
    assert merge_revocation_list(hand_written, additions) == hand_written


def test_merge_without_file_and_nothing_to_add_stays_empty():
    assert merge_revocation_list(None, []) == ""


def test_merge_refuses_a_malformed_current_list_and_bad_additions():
    with pytest.raises(AnsibleFilterError, match="entry 1 has unknown keys"):
        merge_revocation_list("revoked_certificates: [{x: 1}]\n", [{"serial": "AB"}])
    with pytest.raises(AnsibleFilterError, match="addition 1: serial must be"):
        merge_revocation_list("", [{"serial": "not a serial"}])
    with pytest.raises(AnsibleFilterError, match="addition 1 has unknown keys colour"):
        merge_revocation_list("", [{"serial": "AB", "colour": "red"}])
    with pytest.raises(AnsibleFilterError, match="addition 2 must be a mapping"):
        merge_revocation_list("", [{"serial": "AB"}, "CD"])


def test_strings_are_quoted_so_that_they_read_back_unchanged():
    awkward = 'CN=Doe\\, John "JD",O=Ex: ample #1\nnext'
    text = merge_revocation_list("", [{"serial": "AB", "subject": awkward, "reason": "yes"}])
    [entry] = parse_revocation_list(text)
    assert entry["subject"] == awkward
    assert entry["reason"] == "yes"  # not the boolean YAML 1.1 would make of it
