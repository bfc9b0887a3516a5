# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The revocation list kept on the controller: its one reader and its one writer.

The list is a YAML file in the inventory, written by the ``mtls.rollout.revoke`` playbook
(filter ``revocation_merge``) and read by the ``nginx_mtls`` role and the ``mtls.rollout.report``
playbook (filter ``revocation_list``). Controller-side only.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.mtls.rollout.plugins.module_utils._crypto import (
    CryptoError,
    parse_serial,
    read_serial_hex,
    serial_hex,
)

LIST_KEY = "revoked_certificates"
# Entry keys in the order they are written.
ENTRY_KEYS = (
    "serial",
    "subject",
    "reason",
    "reason_code",
    "revoked_at",
    "not_after",
    "host",
    "item",
    "comment",
)
HEADER = """\
# Revoked certificates. Written by the mtls.rollout.revoke playbook and read by the
# nginx_mtls role, which answers every site's request from a certificate with one of these
# serials with 403 (nginx_mtls_revoked_status). step-ca refuses to renew them.
#
# Serials are written as NGINX shows $ssl_client_serial: upper-case hex, in quotes.
# Add certificates with the playbook, which revokes them at step-ca first. An entry removed
# here lets that certificate in again at NGINX (the CA still refuses its renewal); one
# whose not_after has passed can go, since NGINX refuses an expired certificate anyway.
"""


def _fail(source: str, message: str) -> AnsibleFilterError:
    return AnsibleFilterError(f"{source}: {message}")


def parse_revocation_list(text: Any, source: str = "revocation list") -> list[dict[str, Any]]:
    """The entries of a revocation list's text, validated; ``[]`` for an empty text."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return []
    if not isinstance(text, str):
        raise _fail(source, f"expected the file's text, got {type(text).__name__}")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _fail(source, f"is not valid YAML: {exc}") from None
    if data is None:
        return []
    if not isinstance(data, dict) or set(data) != {LIST_KEY}:
        raise _fail(source, f"must be a mapping with the one key {LIST_KEY}: [...]")
    entries = data[LIST_KEY]
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise _fail(source, f"{LIST_KEY} must be a list of entries")
    seen: dict[str, int] = {}
    result = []
    for index, entry in enumerate(entries, start=1):
        where = f"entry {index}"
        if not isinstance(entry, dict):
            raise _fail(source, f"{where} must be a mapping with a serial")
        unknown = sorted(str(key) for key in entry if key not in ENTRY_KEYS)
        if unknown:
            raise _fail(
                source,
                f"{where} has unknown keys {', '.join(unknown)}; known: {', '.join(ENTRY_KEYS)}",
            )
        try:
            number = read_serial_hex(entry.get("serial"))
        except CryptoError as exc:
            raise _fail(source, f"{where}: {exc}") from None
        serial = serial_hex(number)
        if serial in seen:
            raise _fail(source, f"{where}: serial {serial} is already entry {seen[serial]}")
        seen[serial] = index
        result.append(dict(entry, serial=serial))
    return result


def _scalar(value: Any) -> str:
    """``value`` as a YAML scalar: numbers bare, everything else as a double-quoted string.

    JSON's string escapes are a subset of YAML's double-quoted ones, so ``json.dumps`` gives a
    scalar that every YAML parser reads back as the same string (a serial such as ``"1234"``
    stays a string, never a number).
    """
    if isinstance(value, bool) or value is None:
        return json.dumps(str(value) if value is not None else "")
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)


def dump_revocation_list(entries: list[dict[str, Any]]) -> str:
    """The file text for ``entries``: the header comment, then one block per entry."""
    if not entries:
        return HEADER + f"{LIST_KEY}: []\n"
    lines = [HEADER.rstrip("\n"), f"{LIST_KEY}:"]
    for entry in entries:
        first = True
        for key in ENTRY_KEYS:
            if entry.get(key) in (None, ""):
                continue
            lines.append(f"{'  - ' if first else '    '}{key}: {_scalar(entry[key])}")
            first = False
    return "\n".join(lines) + "\n"


def merge_revocation_list(
    text: Any, additions: list[dict[str, Any]] | None, source: str = "revocation list"
) -> str:
    """The list's text with ``additions`` appended, each serial once.

    A serial already on the list keeps its entry as it is (its first revocation date and
    reason). When nothing is new, the text comes back byte for byte, so a writer that compares
    content reports no change. Each addition needs a ``serial`` in any form
    :func:`parse_serial` reads (``serial_hex`` from ``step_ca_revoke``, a decimal integer, ...).
    """
    current = parse_revocation_list(text, source)
    known = {entry["serial"] for entry in current}
    added = []
    for index, addition in enumerate(additions or [], start=1):
        if not isinstance(addition, dict):
            raise _fail(source, f"addition {index} must be a mapping with a serial")
        unknown = sorted(str(key) for key in addition if key not in ENTRY_KEYS)
        if unknown:
            raise _fail(source, f"addition {index} has unknown keys {', '.join(unknown)}")
        try:
            serial = serial_hex(parse_serial(addition.get("serial")))
        except CryptoError as exc:
            raise _fail(source, f"addition {index}: {exc}") from None
        if serial in known:
            continue
        known.add(serial)
        added.append(dict(addition, serial=serial))
    if not added:
        return "" if text is None else str(text)
    return dump_revocation_list(current + added)
