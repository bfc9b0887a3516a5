# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``nginx_mtls_role_loaded`` module's logic: has NGINX loaded the files on disk?

NGINX reads its configuration, and the files the configuration names (client trust
bundles, CRLs, ...), only when it starts or reloads. A file that changed after the last
reload is on disk but not in use, and nothing on disk says so. The ``nginx_mtls`` role's
reload handler therefore writes a *record*: the SHA-256 of each watched file as it was
just before the reload (``None`` for a file that did not exist). A later run compares the
files with the record (:func:`compare`) and reloads on any difference.

The record is taken before the reload, not after: a file that changes in between then
differs from the record and is reloaded once more, where a record taken afterwards could
name content that was not on disk when the reload was sent. It records what was sent, not
what NGINX took: ``systemctl reload nginx`` returns once the signal is sent, and a master
that then fails (a port it cannot bind) keeps its old configuration and logs the error.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

__all__ = [
    "RECORD_VERSION",
    "LoadedError",
    "check",
    "compare",
    "file_digest",
    "parse_record",
    "read_state",
    "render_record",
    "require_absolute",
]

# Written into the record; a record of another version counts as no record (one reload).
RECORD_VERSION = 1

_CHUNK = 1024 * 1024


class LoadedError(Exception):
    """A watched file could not be read; the message names it."""


def file_digest(path: str) -> str | None:
    """SHA-256 (hex) of the content of ``path``, following symbolic links, as NGINX does.

    ``None`` when nothing is there (a dangling link included: NGINX cannot read it either).
    Raises :class:`LoadedError` for a folder or a file that cannot be read.
    """
    if not os.path.exists(path):
        return None
    if os.path.isdir(path):
        raise LoadedError(f"{path} is a folder, not a file")
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LoadedError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def read_state(paths: list[str]) -> dict[str, str | None]:
    """The digest of each path (each once), by path."""
    return {path: file_digest(path) for path in dict.fromkeys(paths)}


def render_record(state: dict[str, str | None]) -> str:
    """The record of ``state``: JSON with sorted keys, so equal states give equal bytes."""
    return json.dumps({"version": RECORD_VERSION, "files": state}, indent=2, sort_keys=True) + "\n"


def parse_record(content: bytes | None) -> tuple[dict[str, str | None] | None, str | None]:
    """The files of a record, or ``(None, why)`` when there is no usable record."""
    if content is None:
        return None, "there is no record of what NGINX loaded"
    try:
        data: Any = json.loads(content.decode("utf-8"))
    except ValueError:
        return None, "the record of what NGINX loaded is not in this version's format"
    files = data.get("files") if isinstance(data, dict) else None
    if (
        not isinstance(files, dict)
        or data.get("version") != RECORD_VERSION
        or not all(isinstance(value, (str, type(None))) for value in files.values())
    ):
        return None, "the record of what NGINX loaded is not in this version's format"
    return files, None


def compare(
    state: dict[str, str | None], recorded: dict[str, str | None] | None
) -> tuple[list[str], list[str]]:
    """The paths of ``state`` that NGINX has not loaded as they are, and why, one line each.

    Without a record every path counts (the caller gives the one reason). Paths in the
    record that are no longer watched do not count: what stopped naming them (the
    configuration) changed too.
    """
    if recorded is None:
        return list(state), []
    changed: list[str] = []
    reasons: list[str] = []
    for path, digest in state.items():
        if path not in recorded:
            reason = f"{path} is not in the record of what NGINX loaded"
        elif recorded[path] == digest:
            continue
        elif digest is None:
            reason = f"{path} was removed since NGINX last loaded it"
        elif recorded[path] is None:
            reason = f"{path} appeared since NGINX last loaded the files"
        else:
            reason = f"{path} changed since NGINX last loaded it"
        changed.append(path)
        reasons.append(reason)
    return changed, reasons


def require_absolute(option: str, paths: list[str]) -> None:
    """Refuse a relative path: NGINX resolves one against its prefix (``nginx -p``, such as
    /etc/nginx), this process against its working directory, so the digest would be of
    another file, or ``None`` for ever."""
    for path in paths:
        if not os.path.isabs(path):
            raise LoadedError(
                f"{path} is a relative path; {option} takes absolute paths only (NGINX resolves a"
                " relative path against its prefix, such as /etc/nginx, which this module does"
                " not know)"
            )


def check(paths: list[str], record_path: str) -> dict[str, Any]:
    """What the module returns: the files' state, its record, and what NGINX has not loaded."""
    require_absolute("files", paths)
    require_absolute("record", [record_path])
    state = read_state(paths)
    try:
        with open(record_path, "rb") as handle:
            content: bytes | None = handle.read()
    except FileNotFoundError:
        content = None
    except OSError as exc:
        raise LoadedError(f"cannot read {record_path}: {exc.strerror or exc}") from exc
    recorded, problem = parse_record(content)
    changed, reasons = compare(state, recorded)
    if problem:
        reasons = [f"{problem} ({record_path})"]
    return {
        "files": state,
        "record": render_record(state),
        "changed_files": changed,
        "reasons": reasons,
    }
