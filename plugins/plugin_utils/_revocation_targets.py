# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the mtls.rollout.revoke playbook revokes: serials, a host's item or a person,
resolved against the certificates the fleet holds (certificate_report results).

Controller-side only.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.mtls.rollout.plugins.module_utils._crypto import (
    CryptoError,
    parse_serial,
    serial_hex,
)
from ansible_collections.mtls.rollout.plugins.plugin_utils._people import person_id


def _target(host: str | None, entry: dict[str, Any] | None, serial: str) -> dict[str, Any]:
    entry = entry or {}
    return {
        "serial": serial,
        "host": host,
        "item": entry.get("name"),
        "subject": entry.get("subject"),
        "not_after": entry.get("not_after"),
        "profile": entry.get("profile"),
        "found": host is not None,
    }


def _find_person(people: list[dict[str, Any]], wanted: str) -> dict[str, Any] | None:
    folded = wanted.strip().lower()
    for person in people:
        keys = {person["id"], person["name"].lower(), (person.get("email") or "").lower()}
        if folded in keys or person_id(wanted) == person["id"]:
            return person
    return None


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
) -> dict[str, Any]:
    """``{"targets": [...], "errors": [...]}``: each serial to revoke once, where it was found.

    ``scans`` maps a host to its ``certificate_report`` result (``certificates``). A serial
    may be written in any unambiguous form (``nginx_serial``'s: decimal integers, hex strings
    with ``0x``, colons or a letter). Errors say what is unknown and what is known instead.
    """
    if not isinstance(scans, dict):
        raise AnsibleFilterError("revocation_targets: expected {host: certificate_report result}")
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for scanned_host in sorted(scans):
        for entry in (scans[scanned_host] or {}).get("certificates") or []:
            if entry.get("serial"):
                found.setdefault(entry["serial"], (scanned_host, entry))

    targets: list[dict[str, Any]] = []
    errors: list[str] = []
    seen: set[str] = set()

    def add(target: dict[str, Any]) -> None:
        if target["serial"] not in seen:
            seen.add(target["serial"])
            targets.append(target)

    if serials is None or serials == "":
        serials = []
    elif not isinstance(serials, list):
        serials = [serials]
    for value in serials:
        if isinstance(value, str) and value.strip().isdigit():
            # Decimal (step-ca) or hex (NGINX, openssl)? Take the reading that names a
            # certificate of the fleet, when exactly one does.
            readings = {serial_hex(int(value, 10)), serial_hex(int(value, 16))}
            matches = sorted(readings & set(found))
            if len(matches) == 1:
                add(_target(*found[matches[0]], matches[0]))
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
        if serial in found:
            add(_target(*found[serial], serial))
        elif allow_unknown:
            add(_target(None, None, serial))
        else:
            missing = (
                f" (not asked: {', '.join(sorted(unreachable))} did not answer)"
                if unreachable
                else ""
            )
            errors.append(
                f"serial {serial} is not the serial of any certificate in the fleet{missing}."
                " step-ca would revoke it all the same, so a typo would leave the real"
                " certificate valid. Check it with mtls.rollout.report, or set"
                " revoke_unknown_serials=true to revoke a certificate no host holds any more"
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
            known = ", ".join(p["name"] for p in people or []) or "none"
            errors.append(f"no person {person!r} in mtls_people (people: {known})")
        elif not people_host:
            errors.append("mtls_people_host is not set, so no host holds the people's certificates")
        else:
            wanted_items.append((people_host, match["id"], f"{match['name']}'s certificate"))
    for wanted_host, wanted_item, what in wanted_items:
        if wanted_host not in scans:
            state = "did not answer" if wanted_host in (unreachable or []) else "was not read"
            errors.append(f"{what}: {wanted_host} {state}")
            continue
        entries = (scans[wanted_host] or {}).get("certificates") or []
        entry = next((e for e in entries if e.get("name") == wanted_item), None)
        if entry is None:
            names = ", ".join(e.get("name", "?") for e in entries) or "none"
            errors.append(
                f"{wanted_host} has no certificate item {wanted_item!r} (its items: {names})"
            )
        elif not entry.get("serial"):
            errors.append(
                f"{what}: there is no certificate to revoke at {entry.get('path')}"
                f" ({entry.get('reason') or entry.get('status')})"
            )
        else:
            add(_target(wanted_host, entry, entry["serial"]))
    if not targets and not errors:
        errors.append(
            "nothing to revoke: give revoke_serials, revoke_host with revoke_item, or revoke_person"
        )
    return {"targets": targets, "errors": errors}
