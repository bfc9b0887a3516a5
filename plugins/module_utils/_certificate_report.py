# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``certificate_report`` module's logic: what each certificate of a host is, and the
node_exporter textfile that tells Prometheus.

:func:`inspect_items` reads every certificate of a host's ``certificate_items`` (and the
people's) with the renewal rule of the ``certificate`` role (``_crypto.evaluate_certificate``,
the rule ``certificate_info`` applies), and :func:`render_textfile` writes the facts in the
Prometheus text exposition format. Nothing here writes files; the module does.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ansible_collections.mtls.rollout.plugins.module_utils import _crypto, _io

# Defaults of the certificate role (roles/certificate/defaults/main.yml); a unit test
# keeps them equal.
DEFAULT_CERTIFICATE_DIR = "/etc/ssl/mtls"
DEFAULT_RENEW_BEFORE = "0.33"
DEFAULT_PROFILE = "server"


class ReportError(Exception):
    """Bad module input; the message says which."""


@dataclass(frozen=True)
class Options:
    """The module's options, parsed once."""

    items: list[dict[str, Any]]
    certificate_dir: str
    renew_before: Any
    trust_bundle_path: str
    revoked: frozenset[int]

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Options:
        folder = (params.get("certificate_dir") or DEFAULT_CERTIFICATE_DIR).rstrip("/") or "/"
        items = params.get("items") or []
        names = set()
        for index, item in enumerate(items, start=1):
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str) or not name:
                raise ReportError(f"items entry {index} needs a name")
            if name in names:
                raise ReportError(f"two items are called {name!r}")
            names.add(name)
        revoked = set()
        for value in params.get("revoked_serials") or []:
            try:
                revoked.add(_crypto.read_serial_hex(value))
            except _crypto.CryptoError as exc:
                raise ReportError(f"revoked_serials: {exc}") from None
        renew_before = params.get("renew_before")
        try:
            _crypto.RenewBefore.parse(renew_before)
        except _crypto.CryptoError as exc:
            raise ReportError(str(exc)) from None
        return cls(
            items=list(items),
            certificate_dir=folder,
            renew_before=renew_before,
            trust_bundle_path=params.get("trust_bundle_path") or f"{folder}/ca-bundle.pem",
            revoked=frozenset(revoked),
        )


def _read_anchors(path: str) -> list[Any] | None:
    """The trust bundle's certificates, or ``None`` when it is missing or unreadable."""
    try:
        data = _io.read_bytes(path)
    except _io.FileIOError:
        return None
    if data is None:
        return None
    try:
        return _crypto.load_certificates(data, path)
    except _crypto.CryptoError:
        return None


def _read_key(path: str) -> tuple[Any, str | None]:
    """``(key, None)``, ``(None, None)`` when missing, ``(None, why)`` when unreadable."""
    try:
        data = _io.read_bytes(path)
    except _io.FileIOError as exc:
        return None, str(exc)
    if data is None:
        return None, None
    try:
        return _crypto.load_private_key(data, None, path).key, None
    except _crypto.CryptoError as exc:
        return None, str(exc)


def _status(entry: dict[str, Any]) -> str:
    if entry["remaining_seconds"] <= 0:
        return "expired"
    if entry["revoked"]:
        return "revoked"
    return "renew" if entry["needs_signing"] else "ok"


def inspect_item(
    item: dict[str, Any],
    options: Options,
    anchors: list[Any] | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """One certificate's facts and verdict, as the certificate role would judge it now."""
    now = now or datetime.now(timezone.utc)
    name = item["name"]
    cert_path = item.get("cert_path") or f"{options.certificate_dir}/{name}.crt"
    key_path = item.get("key_path") or f"{options.certificate_dir}/{name}.key"
    entry: dict[str, Any] = {
        "name": name,
        "path": cert_path,
        "key_path": key_path,
        "common_name": item.get("common_name"),
        "exists": False,
        "revoked": False,
        "needs_signing": True,
    }
    try:
        desired = _crypto.Desired.create(
            subject={"common_name": item.get("common_name")},
            subject_alt_names=list(item.get("subject_alt_names") or []),
            profile=item.get("profile") or DEFAULT_PROFILE,
            renew_before=item.get("renew_before") or options.renew_before,
        )
    except _crypto.CryptoError as exc:
        return dict(entry, status="invalid", reason=f"the item is invalid: {exc}")
    try:
        data = _io.read_bytes(cert_path)
    except _io.FileIOError as exc:
        return dict(entry, exists=True, status="unreadable", reason=str(exc))
    if data is None:
        return dict(entry, status="missing", reason=f"certificate {cert_path} is missing")
    entry["exists"] = True
    try:
        cert, *chain = _crypto.load_certificates(data, cert_path)
    except _crypto.CryptoError as exc:
        return dict(entry, status="unreadable", reason=f"certificate unreadable: {exc}")

    # The certificate itself, for a caller that must not take the host's word for the facts
    # below (mtls.rollout.revoke checks it against the pinned root and the inventory).
    entry["certificate_pem"] = _crypto.certificates_pem([cert, *chain])
    key, key_problem = _read_key(key_path)
    desired.key = key
    desired.anchors = anchors
    desired.intermediates = list(chain)
    verdict = _crypto.evaluate_certificate(cert, desired, now)
    reasons = list(verdict.reasons)
    if key is None:
        reasons.insert(0, key_problem or f"private key {key_path} is missing")
    facts = verdict.facts
    entry.update(
        {
            "common_name": facts["common_name"],
            "subject": facts["subject_string"],
            "issuer": facts["issuer_string"],
            "serial": facts["serial"],
            "profile": facts["profile"],
            "subject_alt_names": facts["subject_alt_names"],
            "not_before": facts["not_before"],
            "not_after": facts["not_after"],
            "not_before_timestamp": int(_crypto.not_valid_before(cert).timestamp()),
            "not_after_timestamp": int(_crypto.not_valid_after(cert).timestamp()),
            "remaining_seconds": facts["remaining_seconds"],
            "days_left": math.floor(facts["remaining_seconds"] / 86400),
            "renew_threshold_seconds": facts["renew_threshold_seconds"],
            "chains_to_trust": facts["chains_to_trust"],
            "matches_key": facts["matches_key"] if key is not None else None,
            "revoked": cert.serial_number in options.revoked,
            "needs_signing": bool(reasons),
            "reason": "; ".join(reasons) if reasons else "certificate is valid",
        }
    )
    entry["status"] = _status(entry)
    return entry


def inspect_items(options: Options, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every item's entry, in the order given."""
    anchors = _read_anchors(options.trust_bundle_path)
    return [inspect_item(item, options, anchors, now) for item in options.items]


# ------------------------------------------------------------------ textfile

# Metric families in the order they are written: (name, help, value of an entry or None).
_FAMILIES: tuple[tuple[str, str, Any], ...] = (
    (
        "mtls_certificate_not_after_seconds",
        "End of validity of the certificate (not_after), as a Unix timestamp.",
        lambda e: e.get("not_after_timestamp"),
    ),
    (
        "mtls_certificate_not_before_seconds",
        "Start of validity of the certificate (not_before), as a Unix timestamp.",
        lambda e: e.get("not_before_timestamp"),
    ),
    (
        "mtls_certificate_present",
        "1 when the certificate file exists and can be read, 0 when it is missing or unreadable.",
        lambda e: 1 if e.get("serial") else 0,
    ),
    (
        "mtls_certificate_needs_signing",
        "1 when the certificate role would re-sign the certificate now: missing, expired, below"
        " its renewal threshold, or not matching its key, names, profile or trust bundle.",
        lambda e: 1 if e["needs_signing"] else 0,
    ),
    (
        "mtls_certificate_revoked",
        "1 when the certificate's serial is on the revocation list (it is still installed).",
        lambda e: 1 if e["revoked"] else 0,
    ),
)
_INFO = "mtls_certificate_info"
_INFO_HELP = "Facts of the certificate as labels (common name, serial, profile, issuer); always 1."
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _label_value(value: Any) -> str:
    """A label value in the exposition format: backslash, double quote and newline escaped."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: list[tuple[str, Any]]) -> str:
    for key, _value in pairs:
        if not _LABEL_NAME.match(key):
            raise ReportError(f"invalid label name {key!r}")
    return "{" + ",".join(f'{key}="{_label_value(value)}"' for key, value in pairs) + "}"


def render_textfile(host: str, entries: list[dict[str, Any]]) -> str:
    """The node_exporter textfile (Prometheus text format 0.0.4) for a host's entries.

    Every series has the labels ``host`` (the inventory name) and ``name`` (the item's). The
    values are facts of the certificates, not of the time of writing, so the file only
    changes when a certificate or its verdict changes. Alert on ``time()`` in Prometheus.
    """
    ordered = sorted(entries, key=lambda e: e["name"])
    lines: list[str] = []
    for metric, help_text, value_of in _FAMILIES:
        series = [(entry, value_of(entry)) for entry in ordered if value_of(entry) is not None]
        if not series:
            continue
        lines.append(f"# HELP {metric} {help_text}")
        lines.append(f"# TYPE {metric} gauge")
        for entry, value in series:
            lines.append(f"{metric}{_labels([('host', host), ('name', entry['name'])])} {value}")
    described = [entry for entry in ordered if entry.get("serial")]
    if described:
        lines.append(f"# HELP {_INFO} {_INFO_HELP}")
        lines.append(f"# TYPE {_INFO} gauge")
        for entry in described:
            pairs = [
                ("host", host),
                ("name", entry["name"]),
                ("common_name", entry.get("common_name")),
                ("serial", entry.get("serial")),
                ("profile", entry.get("profile")),
                ("issuer", entry.get("issuer")),
            ]
            lines.append(f"{_INFO}{_labels(pairs)} 1")
    return "\n".join(lines) + "\n" if lines else ""


def update_textfile(module: Any, path: str, content: str, mode: str) -> tuple[bool, str | None]:
    """Write ``content`` to ``path`` atomically unless it is there already; honours check mode.

    Returns ``(changed, previous content or None)``. The temporary file is a dotfile whose name
    does not end in ``.prom``, so node_exporter never reads a half-written file. Raises
    :class:`ReportError` when the folder is missing or the file cannot be written.
    """
    folder = path.rsplit("/", 1)[0] or "/"
    try:
        existing = _io.read_bytes(path)
    except _io.FileIOError as exc:
        raise ReportError(str(exc)) from None
    if existing is None and not os.path.isdir(folder):
        raise ReportError(
            f"cannot write {path}: folder {folder} does not exist. Point it at the folder of"
            " node_exporter's textfile collector (--collector.textfile.directory; Debian's"
            " prometheus-node-exporter package reads /var/lib/prometheus/node-exporter)"
        )
    previous = None if existing is None else existing.decode("utf-8", "replace")
    file_args: dict[str, Any] = dict.fromkeys(
        ("owner", "group", "seuser", "serole", "selevel", "setype", "secontext", "attributes")
    )
    file_args.update(path=path, mode=mode)
    if previous == content:
        # In check mode this only says whether the mode would change.
        return module.set_fs_attributes_if_different(file_args, False), previous
    if not module.check_mode:
        try:
            _io.write_file(module, path, content.encode("utf-8"), file_args, secret=False)
        except _io.FileIOError as exc:
            raise ReportError(str(exc)) from None
    return True, previous
