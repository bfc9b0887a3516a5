# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the mtls.rollout.revoke playbook revokes: serials, a host's item or a person,
resolved against the issuance record and the certificates the fleet reports
(certificate_report results).

A host's word is never taken for what it holds. For a host and item (a person is an item
of the people host), the playbook revokes:

* every unexpired serial the issuance record (``certificate_issued_file``, written by the
  certificate role on the controller) holds for that host and item; and
* the certificate the host reports, only when the controller verifies it: it chains to the
  root pinned for that host, its subject, SANs and profile are exactly the item's as the
  inventory defines it, and, when the record holds certificates of the item, its public key
  is one of theirs.

A report that fails verification is *refused* (not revoked, the run fails at the end); a
host that cannot be read is revoked from the record alone, with a *warning*. Controller-side
only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.mtls.rollout.plugins.module_utils import _crypto
from ansible_collections.mtls.rollout.plugins.module_utils._crypto import (
    CryptoError,
    parse_serial,
    serial_hex,
)
from ansible_collections.mtls.rollout.plugins.plugin_utils import _issued_record
from ansible_collections.mtls.rollout.plugins.plugin_utils._people import person_id

DEFAULT_PROFILE = "server"
LIMIT = 'see docs/security.md, "Revocation by host"'


def _target(
    host: str | None, entry: Mapping[str, Any] | None, serial: str, source: str | None
) -> dict[str, Any]:
    entry = entry or {}
    return {
        "serial": serial,
        "host": host,
        "item": entry.get("name"),
        "subject": entry.get("subject"),
        "not_after": entry.get("not_after"),
        "profile": entry.get("profile"),
        "found": host is not None,
        "source": source,
    }


def _recorded(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "serial": entry["serial"],
        "host": entry["host"],
        "item": entry["item"],
        "subject": entry.get("subject"),
        "not_after": entry.get("not_after"),
        "profile": entry.get("profile"),
        "found": True,
        "source": "record",
    }


def _find_person(people: list[dict[str, Any]], wanted: str) -> dict[str, Any] | None:
    folded = wanted.strip().lower()
    for person in people:
        keys = {person["id"], person["name"].lower(), (person.get("email") or "").lower()}
        if folded in keys or person_id(wanted) == person["id"]:
            return person
    return None


def _now(value: Any) -> datetime:
    if value is None:
        return datetime.now(timezone.utc)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return _issued_record.parse_time(value, "now")


def verify_reported(
    host: str,
    item: Mapping[str, Any],
    certificate_pem: Any,
    roots: list[Any] | None,
    keys: set[str],
    now: datetime,
) -> tuple[dict[str, Any] | None, list[str]]:
    """The facts of the certificate ``host`` reports for ``item``, and why it is not the
    item's (empty when it is).

    ``item`` is the inventory's entry; ``roots`` the PEMs of the roots pinned for ``host``;
    ``keys`` the public key hashes the issuance record holds for the item (empty: the key is
    not checked). Nothing the host said about the certificate is used but its PEM.
    """
    if not isinstance(certificate_pem, str) or not certificate_pem.strip():
        return None, ["it sent no certificate (PEM) to check"]
    try:
        leaf, *chain = _crypto.load_certificates(certificate_pem.encode("ascii"), "its certificate")
    except (CryptoError, UnicodeEncodeError) as exc:
        return None, [f"its certificate is unreadable: {exc}"]
    facts = _crypto.certificate_facts(leaf, now)
    reasons: list[str] = []
    anchors = []
    for root in roots or []:
        try:
            anchors.extend(_crypto.load_certificates(str(root).encode("ascii"), "root"))
        except (CryptoError, UnicodeEncodeError) as exc:
            reasons.append(f"the root pinned for {host} is unreadable: {exc}")
    if not anchors:
        reasons.append(
            f"no root is pinned for {host} (certificate_ca_root_fingerprint) to check it against"
        )
    else:
        ok, message = _crypto.chains_to(leaf, anchors, chain, now)
        if not ok:
            reasons.append(f"it does not chain to the root pinned for {host}: {message}")
    common_name = str(item.get("common_name") or "").strip()
    profile = item.get("profile") or DEFAULT_PROFILE
    try:
        wanted = _crypto.certificate_sans(
            common_name or None, _crypto.parse_sans(list(item.get("subject_alt_names") or []))
        )
    except CryptoError as exc:
        reasons.append(f"the inventory's item has invalid SANs ({exc})")
    else:
        # The inventory's item is what the certificate must be, as the role's install checks.
        differences = _crypto.identity_differences(leaf, common_name, wanted, profile)
        reasons.extend(f"its {difference}" for difference in differences)
    if keys and facts["public_key_fingerprint"] not in keys:
        reasons.append(
            "its public key is none of the keys the issuance record holds for this item (another"
            " host's certificate, or a key made since the last signing by the role)"
        )
    return facts, reasons


@dataclass(frozen=True)
class _Item:
    host: str
    name: str
    what: str  # how messages name it: "item john of laptop", "John Doe's certificate"


@dataclass(frozen=True)
class _Notes:
    errors: list[str]
    refused: list[str]
    warnings: list[str]


def _by_item(
    wanted: _Item,
    scans: Mapping[str, Any],
    items: Mapping[str, Any] | None,
    record: list[dict[str, Any]],
    anchors: Mapping[str, Any] | None,
    unreachable: list[str] | None,
    moment: datetime,
    notes: _Notes,
) -> list[dict[str, Any]]:
    """The targets of one host's item: its verified report, then what the record holds."""
    host, what = wanted.host, wanted.what
    own = [e for e in record if e["host"] == host and e["item"] == wanted.name]
    live = _issued_record.unexpired(own, host, wanted.name, moment)
    keys = {entry["public_key_sha256"] for entry in own}
    listed = ", ".join(entry["serial"] for entry in live)
    recorded = [_recorded(entry) for entry in live]
    defined = (items or {}).get(host)
    if defined is None:
        # The host dropped out before its items were taken (refused for its facts, or
        # failed): nothing of it can be checked, the record still says what it got.
        if not live:
            notes.errors.append(
                f"{what}: the inventory's items of {host} could not be read, and the"
                " issuance record holds no unexpired certificate of it: nothing to revoke"
            )
        else:
            notes.warnings.append(
                f"{what}: the inventory's items of {host} could not be read (did it fail"
                " earlier?), so nothing it holds could be checked; revoking what the issuance"
                f" record holds for it ({listed}); {LIMIT}"
            )
        return recorded
    defined = [entry for entry in defined if isinstance(entry, Mapping)]
    spec = next((entry for entry in defined if entry.get("name") == wanted.name), None)
    if spec is None:
        names = ", ".join(str(entry.get("name", "?")) for entry in defined) or "none"
        notes.errors.append(f"{host} has no certificate item {wanted.name!r} (its items: {names})")
        return []

    if host not in scans:
        state = "did not answer" if host in (unreachable or []) else "could not be read"
        if not live:
            notes.errors.append(
                f"{what}: {host} {state}, and the issuance record holds no unexpired"
                f" certificate of it{'' if record else ' (there is no issuance record)'}:"
                " nothing to revoke"
            )
        else:
            notes.warnings.append(
                f"{what}: {host} {state}, so its current certificate could not be"
                f" checked; revoking what the issuance record holds for it ({listed}). A"
                " certificate its renewal timer issued since is not in the record: revoke it"
                f" by serial too (from NGINX's log) and rotate what it could reach; {LIMIT}"
            )
        return recorded

    reported = [
        entry
        for entry in (scans[host] or {}).get("certificates") or []
        if isinstance(entry, Mapping) and entry.get("name") == wanted.name
    ]
    if len(reported) != 1:
        notes.refused.append(
            f"{what}: {host} reported {len(reported)} certificates for it instead of one;"
            " none of them was revoked"
        )
        return recorded
    entry = reported[0]
    if not entry.get("certificate_pem") and not entry.get("serial"):
        # No certificate installed (missing or unreadable file).
        where = f"{entry.get('path')} ({entry.get('reason') or entry.get('status')})"
        if not live:
            notes.errors.append(f"{what}: there is no certificate to revoke at {where}")
        else:
            notes.warnings.append(
                f"{what}: {host} holds no certificate at {where}; revoking what the"
                f" issuance record holds for it ({listed})"
            )
        return recorded

    found: list[dict[str, Any]] = []
    roots = list((anchors or {}).get(host) or [])
    facts, reasons = verify_reported(host, spec, entry.get("certificate_pem"), roots, keys, moment)
    if reasons:
        shown = f" (serial {facts['serial']}, {facts['subject_string']})" if facts else ""
        notes.refused.append(
            f"{what}: the certificate {host} reports{shown} was not revoked: {'; '.join(reasons)}"
        )
    elif facts is not None:
        found.append(
            {
                "serial": facts["serial"],
                "host": host,
                "item": wanted.name,
                "subject": facts["subject_string"],
                "not_after": facts["not_after"],
                "profile": facts["profile"],
                "found": True,
                "source": "host",
            }
        )
    if not keys:
        notes.warnings.append(
            f"{what}: the issuance record holds no certificate of it"
            f"{'' if record else ' (there is no issuance record)'}, so the certificate {host}"
            " reports was checked for its CA and names but not for its key. The record starts"
            " with the first certificate the certificate role signs with certificate_issued_file"
            " set"
        )
    return found + recorded


def revocation_targets(
    scans: dict[str, Any],
    serials: Any = None,
    host: str | None = None,
    item: str | None = None,
    person: str | None = None,
    people: list[dict[str, Any]] | None = None,
    people_host: str | None = None,
    unreachable: list[str] | None = None,
    allow_unknown: bool = False,
    items: Mapping[str, Any] | None = None,
    issued: list[dict[str, Any]] | None = None,
    anchors: Mapping[str, Any] | None = None,
    now: Any = None,
) -> dict[str, Any]:
    """``{"targets", "errors", "refused", "warnings"}``: what to revoke, each serial once.

    ``scans`` maps each host that was read to its ``certificate_report`` result; ``items``
    each host to its items as the inventory defines them; ``issued`` is the issuance record
    (``issued_certificates`` filter; ``None`` or empty: no record); ``anchors`` maps a host to
    the PEMs of the roots pinned for it. A serial may be written in any unambiguous form.

    ``errors`` stop the run before anything is revoked. ``refused`` are reports that failed
    verification (not revoked; the run fails at the end); ``warnings`` say what could not be
    checked.
    """
    if not isinstance(scans, dict):
        raise AnsibleFilterError("revocation_targets: expected {host: certificate_report result}")
    moment = _now(now)
    record = list(issued or [])
    recorded = {entry["serial"]: entry for entry in record}
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for scanned_host in sorted(scans):
        for entry in (scans[scanned_host] or {}).get("certificates") or []:
            if isinstance(entry, Mapping) and entry.get("serial"):
                found.setdefault(entry["serial"], (scanned_host, entry))
    known = set(found) | set(recorded)

    targets: list[dict[str, Any]] = []
    errors: list[str] = []
    refused: list[str] = []
    warnings: list[str] = []
    seen: set[str] = set()

    def add(target: dict[str, Any]) -> None:
        if target["serial"] not in seen:
            seen.add(target["serial"])
            targets.append(target)

    def add_serial(serial: str) -> None:
        # The record (written by the controller) says whose it is, before any host's report;
        # its source stays "report" when a host holds it.
        if serial in recorded:
            target = _recorded(recorded[serial])
            if serial in found:
                target["source"] = "report"
            add(target)
        else:
            add(_target(found[serial][0], found[serial][1], serial, "report"))

    if serials is None or serials == "":
        serials = []
    elif not isinstance(serials, list):
        serials = [serials]
    for value in serials:
        if isinstance(value, str) and value.strip().isdigit():
            # Decimal (step-ca) or hex (NGINX, openssl)? Take the reading that names a
            # certificate of the fleet, when exactly one does.
            readings = {serial_hex(int(value, 10)), serial_hex(int(value, 16))}
            matches = sorted(readings & known)
            if len(matches) == 1:
                add_serial(matches[0])
                continue
            errors.append(
                f"serial {value!r} could be decimal or hex"
                + (" and both name certificates of the fleet" if matches else "")
                + ": give a decimal serial as an unquoted number and a hex one as NGINX shows"
                " it (with a letter), with 0x or with colons"
            )
            continue
        try:
            serial = serial_hex(parse_serial(value))
        except CryptoError as exc:
            errors.append(str(exc))
            continue
        if serial in known:
            add_serial(serial)
        elif allow_unknown:
            add(_target(None, None, serial, None))
        else:
            missing = (
                f" (not asked: {', '.join(sorted(unreachable))} did not answer)"
                if unreachable
                else ""
            )
            errors.append(
                f"serial {serial} is not the serial of any certificate in the fleet or the"
                f" issuance record{missing}. step-ca would revoke it all the same, so a typo"
                " would leave the real certificate valid. Check it with mtls.rollout.report, or"
                " set revoke_unknown_serials=true to revoke a certificate no host holds any more"
            )

    wanted_items: list[tuple[str, str, str]] = []
    if host or item:
        if not (host and item):
            errors.append("revoke_host and revoke_item go together: give both")
        else:
            wanted_items.append((host, item, f"item {item} of {host}"))
    if person:
        match = _find_person(people or [], person)
        if match is None:
            known_people = ", ".join(p["name"] for p in people or []) or "none"
            errors.append(f"no person {person!r} in mtls_people (people: {known_people})")
        elif not people_host:
            errors.append("mtls_people_host is not set, so no host holds the people's certificates")
        else:
            wanted_items.append((people_host, match["id"], f"{match['name']}'s certificate"))

    for wanted_host, wanted_item, what in wanted_items:
        found_targets = _by_item(
            _Item(wanted_host, wanted_item, what),
            scans,
            items,
            record,
            anchors,
            unreachable,
            moment,
            _Notes(errors, refused, warnings),
        )
        for target in found_targets:
            add(target)

    if not targets and not errors and not refused:
        errors.append(
            "nothing to revoke: give revoke_serials, revoke_host with revoke_item, or revoke_person"
        )
    return {"targets": targets, "errors": errors, "refused": refused, "warnings": warnings}
