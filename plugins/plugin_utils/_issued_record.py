# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The issuance record: every certificate step-ca issued through the ``certificate`` role.

A YAML file on the controller (``certificate_issued_file``, by default
``issued-certificates.yml`` next to the inventory). The role's signing step writes one entry
per issued certificate before any host installs it; ``mtls.rollout.revoke`` reads it, so
that revoking a host's certificate does not depend on what that host says it holds.

An entry holds public facts only: host, item, serial (NGINX's form), subject, SANs, profile,
the SHA-256 of the public key (DER SubjectPublicKeyInfo), ``not_after``, the CA's URL and
``issued_at``. Writers (signing leaders of parallel forks, ``serial:`` batches, other runs)
take an exclusive lock on a lock file beside the record, read it, merge, and replace it
atomically; entries that expired more than :data:`KEEP_EXPIRED` ago are dropped, so the file
stays bounded. Controller-side only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import yaml

from ansible_collections.mtls.rollout.plugins.module_utils import _crypto

RECORD_KEY = "issued_certificates"
# Long enough to tell whose serial an expired certificate in an old NGINX log was; an
# expired certificate needs no revocation (NGINX refuses it anyway).
KEEP_EXPIRED = timedelta(days=30)
LOCK_WAIT = 60.0
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
FIELDS = (
    "serial",
    "host",
    "item",
    "subject",
    "subject_alt_names",
    "profile",
    "public_key_sha256",
    "not_after",
    "ca_url",
    "issued_at",
)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
HEADER = """\
# Certificates step-ca issued through the mtls.rollout.certificate role, written on the
# controller by the role before any host installed them (certificate_issued_file), and
# read by the mtls.rollout.revoke playbook, which revokes what this file holds for a host
# instead of trusting what the host says it holds. Public facts only; keep it with the
# inventory. Entries are dropped 30 days after their certificate expired.
"""


class RecordError(Exception):
    """The record cannot be read or written; the message names the file and says why."""


def parse_time(text: Any, what: str) -> datetime:
    """A time as the record writes it (UTC, to the second); raises :class:`RecordError`."""
    problem = f"{what} must be a time like 2026-12-31T12:00:00Z, got {text!r}"
    if not isinstance(text, str):
        raise RecordError(problem)
    try:
        return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        raise RecordError(problem) from None


def entry_for(
    host: str, item: str, certificate_pem: str, ca_url: str, issued_at: datetime
) -> dict[str, Any]:
    """The record's entry for a certificate (leaf first in ``certificate_pem``)."""
    try:
        leaf = _crypto.load_certificates(certificate_pem.encode("ascii"), f"{item} certificate")[0]
    except (_crypto.CryptoError, UnicodeEncodeError) as exc:
        raise RecordError(f"the issued certificate of {item} is unreadable: {exc}") from None
    facts = _crypto.certificate_facts(leaf)
    return {
        "serial": facts["serial"],
        "host": host,
        "item": item,
        "subject": facts["subject_string"],
        "subject_alt_names": list(facts["subject_alt_names"]),
        "profile": facts["profile"],
        "public_key_sha256": facts["public_key_fingerprint"],
        "not_after": facts["not_after"],
        "ca_url": ca_url,
        "issued_at": issued_at.astimezone(timezone.utc).strftime(TIME_FORMAT),
    }


def _check_entry(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise RecordError(f"{where} must be a mapping, got {raw!r}")
    entry = dict(raw)
    try:
        _crypto.read_serial_hex(entry.get("serial"))
    except _crypto.CryptoError as exc:
        raise RecordError(f"{where}: {exc}") from None
    for key in ("host", "item"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise RecordError(f"{where}: {key} must be a non-empty string")
    parse_time(entry.get("not_after"), f"{where}: not_after")
    fingerprint = entry.get("public_key_sha256")
    if not isinstance(fingerprint, str) or not _SHA256.match(fingerprint):
        raise RecordError(f"{where}: public_key_sha256 must be 64 lower-case hex digits")
    sans = entry.get("subject_alt_names", [])
    if not isinstance(sans, list) or not all(isinstance(san, str) for san in sans):
        raise RecordError(f"{where}: subject_alt_names must be a list of strings")
    return entry


def parse(text: str | None, path: str) -> list[dict[str, Any]]:
    """The entries of a record's text; an empty text (or file) is an empty record.

    Raises :class:`RecordError` naming ``path`` and the entry.
    """
    if text is None or not text.strip():
        return []
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RecordError(f"{path} is not valid YAML: {exc}") from None
    if data is None:
        return []
    if not isinstance(data, Mapping) or not isinstance(data.get(RECORD_KEY, []), list):
        raise RecordError(f"{path} must be a mapping with a list under {RECORD_KEY}")
    entries = []
    seen: set[str] = set()
    for index, raw in enumerate(data.get(RECORD_KEY) or [], start=1):
        entry = _check_entry(raw, f"{path}: entry {index}")
        if entry["serial"] in seen:
            raise RecordError(f"{path}: entry {index}: serial {entry['serial']} is listed twice")
        seen.add(entry["serial"])
        entries.append(entry)
    return entries


def merge(
    existing: Iterable[Mapping[str, Any]],
    new: Iterable[Mapping[str, Any]],
    now: datetime,
) -> list[dict[str, Any]]:
    """``existing`` then the ``new`` entries whose serial is not there yet, without entries
    that expired more than :data:`KEEP_EXPIRED` before ``now``."""
    cutoff = now - KEEP_EXPIRED
    merged: list[dict[str, Any]] = []
    seen: set[str] = set()
    for entry in [*existing, *new]:
        if entry["serial"] in seen:
            continue
        seen.add(entry["serial"])
        if parse_time(entry["not_after"], "not_after") >= cutoff:
            merged.append(dict(entry))
    return merged


def render(entries: list[dict[str, Any]]) -> str:
    """The record's text: a header, then one block per entry, keys in :data:`FIELDS` order.

    Every value is written as JSON, which YAML reads back as the same value: a serial such as
    ``"1E10"`` stays a string for every YAML reader, never a number.
    """
    if not entries:
        return HEADER + f"{RECORD_KEY}: []\n"
    lines = [HEADER.rstrip("\n"), f"{RECORD_KEY}:"]
    for entry in entries:
        keys = [key for key in FIELDS if key in entry]
        keys += sorted(key for key in entry if key not in FIELDS)
        for position, key in enumerate(keys):
            value = json.dumps(entry[key], ensure_ascii=False)
            lines.append(f"{'  - ' if position == 0 else '    '}{key}: {value}")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _locked(path: str, wait: float) -> Iterator[None]:
    """Hold the exclusive lock of the record at ``path`` (a file beside it, since the record
    itself is replaced by each write); raises :class:`RecordError` after ``wait`` seconds."""
    folder, name = os.path.split(path)
    lock_path = os.path.join(folder, f".{name}.lock")
    try:
        handle = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise RecordError(f"cannot open the lock file {lock_path}: {exc.strerror}") from None
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise RecordError(f"cannot lock {lock_path}: {exc.strerror}") from None
                if time.monotonic() > deadline:
                    raise RecordError(
                        f"another process held the lock {lock_path} for more than {wait:.0f} s"
                    ) from None
            time.sleep(0.02)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        os.close(handle)


def _replace(path: str, text: str, mode: int) -> None:
    """Write ``text`` to ``path`` through a temporary file in its folder and a rename."""
    folder, name = os.path.split(path)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):
        directory = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def record(
    path: str,
    entries: list[dict[str, Any]],
    now: datetime | None = None,
    wait: float = LOCK_WAIT,
) -> int:
    """Add ``entries`` to the record at ``path``; returns how many were new.

    Under the record's lock: reads it, merges, drops long-expired entries, and replaces the
    file atomically (keeping its mode; a new file is 0644), only when its text changes. The
    folder must exist. Raises :class:`RecordError`.
    """
    now = now or datetime.now(timezone.utc)
    folder = os.path.dirname(path) or "."
    if not os.path.isabs(path):
        raise RecordError(f"{path} must be an absolute path on the controller")
    if not os.path.isdir(folder):
        problem = "is not a folder" if os.path.exists(folder) else "does not exist"
        raise RecordError(f"cannot write {path}: {folder} {problem}")
    try:
        with _locked(path, wait):
            try:
                with open(path, encoding="utf-8") as handle:
                    before = handle.read()
                mode = stat.S_IMODE(os.stat(path).st_mode)
            except FileNotFoundError:
                before, mode = None, 0o644
            existing = parse(before, path)
            known = {entry["serial"] for entry in existing}
            added = len({entry["serial"] for entry in entries} - known)
            text = render(merge(existing, entries, now))
            if text != before:
                _replace(path, text, mode)
            return added
    except OSError as exc:
        raise RecordError(f"cannot write {path}: {exc.strerror or exc}") from None


def unexpired(
    entries: Iterable[Mapping[str, Any]], host: str, item: str, now: datetime
) -> list[Mapping[str, Any]]:
    """The entries of ``host``'s ``item`` whose certificate has not expired at ``now``."""
    return [
        entry
        for entry in entries
        if entry["host"] == host
        and entry["item"] == item
        and parse_time(entry["not_after"], "not_after") > now
    ]


def record_outcomes(
    outcomes: dict[str, dict[str, dict[str, Any]]],
    issued: Iterable[tuple[str, str, str]],
    files: Mapping[str, str],
    now: datetime | None = None,
    writer: Any = record,
) -> None:
    """Record what a signing step issued, before any host installs it.

    ``outcomes`` are the step's (host: item: outcome); ``issued`` names each request as
    ``(host, item, ca_url)``; ``files`` gives each host's record (empty: none). Each record
    is written once. A certificate that cannot be recorded gets a failed outcome instead,
    so that its host does not install it and fails with the reason (its next run signs
    again); the others are not affected.
    """
    now = now or datetime.now(timezone.utc)
    by_file: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for host, item, ca_url in issued:
        outcome = (outcomes.get(host) or {}).get(item) or {}
        path = files.get(host) or ""
        if not outcome.get("ok") or not path:
            continue
        try:
            entry = entry_for(host, item, outcome["fullchain"], ca_url, now)
        except RecordError as exc:
            outcomes[host][item] = _unrecorded(path, outcome, str(exc))
            continue
        by_file.setdefault(path, []).append((host, item, entry))
    for path, recorded in by_file.items():
        try:
            writer(path, [entry for _host, _item, entry in recorded], now)
        except RecordError as exc:
            for host, item, _entry in recorded:
                outcomes[host][item] = _unrecorded(path, outcomes[host][item], str(exc))


def _unrecorded(path: str, outcome: Mapping[str, Any], reason: str) -> dict[str, Any]:
    serial = outcome.get("serial_hex") or "unknown"
    return {
        "ok": False,
        "unrecorded": True,
        "msg": f"step-ca issued it (serial {serial}), but it could not be added to the issuance"
        f" record {path} (certificate_issued_file): {reason}. It was not installed; fix the"
        " record and run again, which signs a new one",
    }
