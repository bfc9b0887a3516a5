# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet's certificates as a table sorted by expiry, for the mtls.rollout.report playbook.

Controller-side only.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

COLUMNS = ("EXPIRES (UTC)", "DAYS", "STATUS", "HOST", "NAME", "COMMON NAME", "SERIAL")
_UNKNOWN_FIRST = -(2**63)


def sort_key(entry: dict[str, Any]) -> tuple[int, str, str]:
    """Soonest expiry first; certificates without a known expiry (missing) before all."""
    expires = entry.get("not_after_timestamp")
    return (
        _UNKNOWN_FIRST if expires is None else int(expires),
        str(entry.get("host", "")),
        str(entry.get("name", "")),
    )


def _row(entry: dict[str, Any]) -> tuple[str, ...]:
    not_after = entry.get("not_after")
    expires = not_after.replace("T", " ")[:16] if isinstance(not_after, str) else "-"
    days = entry.get("days_left")
    return (
        expires,
        "-" if days is None else str(days),
        str(entry.get("status", "?")).upper(),
        str(entry.get("host", "")),
        str(entry.get("name", "")),
        str(entry.get("common_name") or ""),
        str(entry.get("serial") or "-"),
    )


def certificate_table(entries: Any) -> list[str]:
    """Lines of a fixed-width table of ``entries``, then one line per certificate that is not ok.

    Each entry is a result of the ``certificate_report`` module with ``host`` added.
    """
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise AnsibleFilterError("certificate_table: expected a list of certificate entries")
    ordered = sorted(entries, key=sort_key)
    rows = [COLUMNS] + [_row(entry) for entry in ordered]
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows
    ]
    if not ordered:
        lines.append("(no certificates)")
    problems = [entry for entry in ordered if entry.get("status") != "ok"]
    if problems:
        lines.append("")
        for entry in problems:
            lines.append(f"{entry.get('host')} {entry.get('name')}: {_why(entry)}")
    return lines


def _why(entry: dict[str, Any]) -> str:
    status = entry.get("status")
    if status == "revoked":
        why = "revoked: its serial is on the revocation list"
        if entry.get("needs_signing"):
            why += f"; {entry.get('reason')}"
        return why
    return f"{status}: {entry.get('reason')}"
