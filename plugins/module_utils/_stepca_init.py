# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan and build the files of a step-ca server: PKI, provisioners and ca.json.

The backend of the ``step_ca_init`` module. It never regenerates what exists
unless asked: the root, the intermediate and each provisioner key survive every
run, so certificates issued earlier stay valid and tokens keep their key id.
Nothing here writes files; :func:`plan` returns the desired file contents and the
reasons they differ from what is on disk, and the module does the writing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
except ImportError:  # without cryptography: the modules report it with missing_required_lib
    pass

from ansible_collections.mtls.rollout.plugins.module_utils import (
    _crypto,
    _io,
    _jose,
    _stepca,
    _stepca_bootstrap,
)

PROFILES = ("client", "server", "any")
ROOT_ROTATION_PHASES = ("", "prepare", "switch", "finish")

# step-ca publishes every provisioner's encrypted key at GET /provisioners, to
# anyone who can reach it: the password is all that stands against an offline
# guessing attack, so it must be long.
MIN_PROVISIONER_PASSWORD = 16
MIN_CA_PASSWORD = 8

# ca.json keys the module sets on every run. Everything else in ca.json is kept.
OWNED_KEYS = ("root", "crt", "key", "address", "dnsNames")
# Keys written when ca.json lacks them, and kept as they are otherwise.
DEFAULT_KEYS = ("federatedRoots", "insecureAddress", "logger", "tls")
# The database the module sets up; another type (say mysql) is the operator's and is kept.
MANAGED_DB_TYPE = "badgerv2"

# Values of the regenerate option that mean "do not regenerate".
_NO = ("", "false", "no", "off", "0", "n", "f", "none")
_YES = ("true", "yes", "on", "1", "y", "t")


class StepCAInitError(Exception):
    """A problem the user must fix; the message is safe to show (no secrets)."""


@dataclass
class Layout:
    """Where step-ca's files live under the configuration folder."""

    config_dir: str
    data_dir: str

    @property
    def root_cert(self) -> str:
        return os.path.join(self.config_dir, "certs", "root_ca.crt")

    @property
    def intermediate_cert(self) -> str:
        return os.path.join(self.config_dir, "certs", "intermediate_ca.crt")

    @property
    def root_key(self) -> str:
        return os.path.join(self.config_dir, "secrets", "root_ca_key")

    @property
    def intermediate_key(self) -> str:
        return os.path.join(self.config_dir, "secrets", "intermediate_ca_key")

    @property
    def password_file(self) -> str:
        return os.path.join(self.config_dir, "secrets", "password")

    @property
    def ca_json(self) -> str:
        return os.path.join(self.config_dir, "config", "ca.json")

    @property
    def regeneration_marker(self) -> str:
        """Records the regenerate value of the last regeneration, so that it happens once."""
        return os.path.join(self.config_dir, "config", "regenerated.json")

    @property
    def restart_marker(self) -> str:
        """Written before any other file changes, removed by the role once step-ca restarted:
        a run that dies in between leaves it, and the next run restarts step-ca."""
        return os.path.join(self.config_dir, "config", "restart-pending")

    @property
    def intermediate_marker(self) -> str:
        """Records the rotate_intermediate value of the last rotation, so that it happens once."""
        return os.path.join(self.config_dir, "config", "intermediate-rotated.json")

    # A root rotation's files. The next root's certificate is the marker of a prepared
    # rotation (written after its key; the other "next" files mean nothing without it), the
    # previous root's certificate the marker of a switched one.
    @property
    def next_root_cert(self) -> str:
        return os.path.join(self.config_dir, "certs", "root_ca_next.crt")

    @property
    def next_root_key(self) -> str:
        return os.path.join(self.config_dir, "secrets", "root_ca_next_key")

    @property
    def next_intermediate_cert(self) -> str:
        return os.path.join(self.config_dir, "certs", "intermediate_ca_next.crt")

    @property
    def next_intermediate_key(self) -> str:
        return os.path.join(self.config_dir, "secrets", "intermediate_ca_next_key")

    @property
    def previous_root_cert(self) -> str:
        return os.path.join(self.config_dir, "certs", "root_ca_previous.crt")

    @property
    def db_dir(self) -> str:
        return os.path.join(self.data_dir, "db")

    def managed_files(self) -> list[tuple[str, int, bool]]:
        """Every file step_ca_init owns: path, mode, and whether the service group reads it."""
        return [
            (self.root_cert, 0o644, False),
            (self.intermediate_cert, 0o644, False),
            (self.root_key, 0o600, False),
            (self.intermediate_key, 0o640, True),
            (self.password_file, 0o600, False),
            (self.ca_json, 0o640, True),
            (self.regeneration_marker, 0o644, False),
            (self.intermediate_marker, 0o644, False),
            (self.restart_marker, 0o644, False),
            (self.next_root_cert, 0o644, False),
            (self.next_root_key, 0o600, False),
            (self.next_intermediate_cert, 0o644, False),
            (self.next_intermediate_key, 0o600, False),
            (self.previous_root_cert, 0o644, False),
        ]

    def rotation_files(self) -> list[str]:
        """The files only a rotation writes."""
        return [
            self.intermediate_marker,
            self.restart_marker,
            *self.next_files(),
            self.previous_root_cert,
        ]

    def next_files(self) -> list[str]:
        """A prepared rotation's files, in the order they are removed (the marker first)."""
        return [
            self.next_root_cert,
            self.next_root_key,
            self.next_intermediate_cert,
            self.next_intermediate_key,
        ]

    def folders(self) -> list[tuple[str, int, bool]]:
        """Folders holding those files: path, mode, and whether the service group reads it."""
        return [
            (os.path.dirname(self.root_cert), 0o755, False),
            (os.path.dirname(self.root_key), 0o750, True),
            (os.path.dirname(self.ca_json), 0o750, True),
        ]


@dataclass
class FileChange:
    """One file to (re)write; its mode comes from :meth:`Layout.managed_files`."""

    path: str
    content: bytes


@dataclass
class Plan:
    """What :func:`plan` decided: files to write, why, and facts to return."""

    writes: list[FileChange] = field(default_factory=list)
    removes: list[str] = field(default_factory=list)  # after the writes, in this order
    reasons: list[str] = field(default_factory=list)
    root_pem: str = ""
    root_fingerprint: str = ""
    provisioners: list[dict[str, str]] = field(default_factory=list)
    regenerated: bool = False
    root_rotation: str = "none"  # none, prepared or switched
    # Fingerprints of the roots to trust beside the CA's own during a root rotation.
    transition_roots: list[str] = field(default_factory=list)
    intermediate_fingerprint: str = ""
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)


def _read(path: str) -> bytes | None:
    try:
        return _io.read_bytes(path)
    except _io.FileIOError as exc:
        raise StepCAInitError(str(exc)) from exc


def regeneration_token(value: Any) -> str:
    """The regenerate option as a token: ``""`` (never regenerate) or the value to record.

    ``false``, ``None`` and ``""`` (and the strings Ansible reads as false) mean no;
    ``true`` (and its string forms) is the token ``"true"``; any other value is used as
    given, for example a date. The PKI is regenerated once per token: a run whose token
    equals the one recorded by the last regeneration changes nothing.
    """
    if value is None or value is False:
        return ""
    if value is True:
        return "true"
    token = str(value).strip()
    if token.lower() in _NO:
        return ""
    if token.lower() in _YES:
        return "true"
    return token


def _load_cert(path: str) -> x509.Certificate | None:
    data = _read(path)
    if data is None:
        return None
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise StepCAInitError(f"{path} is not a PEM certificate") from exc


def _load_key(path: str, password: bytes) -> ec.EllipticCurvePrivateKey | None:
    data = _read(path)
    if data is None:
        return None
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError) as exc:
        raise StepCAInitError(
            f"cannot decrypt {path} with the given CA password; set the original password, "
            "or regenerate the PKI to start over"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise StepCAInitError(f"{path} is not an EC private key")
    return key


def _encrypted_pem(key: ec.EllipticCurvePrivateKey, password: bytes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _template_for(profile: str) -> str | None:
    if profile == "client":
        return _stepca_bootstrap.client_only_template()
    if profile == "server":
        return _stepca_bootstrap.server_only_template()
    return None


def _claims(spec: dict[str, Any]) -> dict[str, str]:
    return {
        "minTLSCertDuration": spec["min_duration"],
        "maxTLSCertDuration": spec["max_duration"],
        "defaultTLSCertDuration": spec["default_duration"],
    }


def _reuse_provisioner(existing: dict[str, Any] | None, password: bytes) -> bool:
    """True when ``existing`` holds a key that ``password`` decrypts and that matches its kid."""
    if not existing or existing.get("type") != "JWK" or not existing.get("encryptedKey"):
        return False
    try:
        private = json.loads(_jose.jwe_decrypt_pbes2(existing["encryptedKey"], password))
    except (_jose.JoseError, ValueError):
        return False
    return _jose.jwk_thumbprint(private) == existing.get("key", {}).get("kid")


def _provisioner_entry(
    spec: dict[str, Any], existing: dict[str, Any] | None, regenerate: bool, reasons: list[str]
) -> dict[str, Any]:
    """The ca.json entry of one of the module's provisioners.

    The module owns the entry's type, name, key, encryptedKey, the three TLS duration
    claims and options.x509 (the profile). Other claims and options an operator added
    to a JWK entry of that name are kept.
    """
    name = spec["name"]
    password = spec["password"].encode()
    is_jwk = isinstance(existing, dict) and existing.get("type") == "JWK"
    entry = dict(existing) if is_jwk else {}
    if regenerate or not _reuse_provisioner(existing, password):
        fresh = _stepca_bootstrap.make_jwk_provisioner(name, password, {}, None)
        entry.update({k: fresh[k] for k in ("type", "name", "key", "encryptedKey")})
        if existing is None:
            reasons.append(f"provisioner {name}: new key")
        elif not is_jwk:
            reasons.append(f"provisioner {name}: replaced a {existing.get('type')} provisioner")
        elif not regenerate:  # "regenerating the PKI" already says why
            reasons.append(f"provisioner {name}: password changed, new key")
    claims = dict(entry.get("claims") or {})
    claims.update(_claims(spec))
    entry["claims"] = claims
    options = dict(entry.get("options") or {})
    template = _template_for(spec["profile"])
    if template is None:
        options.pop("x509", None)
    else:
        options["x509"] = {"template": template}
    if options:
        entry["options"] = options
    else:
        entry.pop("options", None)
    return entry


def _merge_provisioners(
    current: list[Any], specs: list[dict[str, Any]], regenerate: bool, reasons: list[str]
) -> tuple[list[Any], list[dict[str, Any]]]:
    """ca.json's provisioner list with the module's entries in it, and those entries.

    Provisioners are matched by name. Entries of other names are kept as they are and
    where they are; the module's own replace theirs in place, and new ones go last.
    """
    existing = {}
    for entry in current:
        if isinstance(entry, dict) and entry.get("name") not in existing:
            existing[entry.get("name")] = entry
    own = {
        spec["name"]: _provisioner_entry(spec, existing.get(spec["name"]), regenerate, reasons)
        for spec in specs
    }
    merged: list[Any] = []
    placed: set[str] = set()
    for entry in current:
        name = entry.get("name") if isinstance(entry, dict) else None
        if name in own:
            if name not in placed:  # a second entry of the same name would clash in step-ca
                merged.append(own[name])
                placed.add(name)
        else:
            merged.append(entry)
    merged += [entry for name, entry in own.items() if name not in placed]
    return merged, [own[spec["name"]] for spec in specs]


def merge_ca_config(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """``current`` ca.json updated with the module's settings from ``desired``.

    :data:`OWNED_KEYS` and the provisioner list come from ``desired``; :data:`DEFAULT_KEYS`
    only when ``current`` lacks them; ``db`` gets the module's type and dataSource unless
    it names another database type. Every other key of ``current`` (top level and
    ``authority``) is kept.
    """
    merged = dict(current)
    for key in OWNED_KEYS:
        merged[key] = desired[key]
    for key in DEFAULT_KEYS:
        if key not in merged:
            merged[key] = desired[key]
    db = current.get("db")
    if not isinstance(db, dict) or db.get("type", MANAGED_DB_TYPE) == MANAGED_DB_TYPE:
        merged["db"] = {**(db if isinstance(db, dict) else {}), **desired["db"]}
    authority = current.get("authority")
    merged["authority"] = {
        **(authority if isinstance(authority, dict) else {}),
        "provisioners": desired["authority"]["provisioners"],
    }
    return merged


def _validate(params: dict[str, Any]) -> None:
    if len(params["password"]) < MIN_CA_PASSWORD:
        raise StepCAInitError(f"the CA password must be at least {MIN_CA_PASSWORD} characters long")
    names = [spec["name"] for spec in params["provisioners"]]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise StepCAInitError(f"provisioner names must be unique: {', '.join(duplicates)}")
    for spec in params["provisioners"]:
        if len(spec["password"]) < MIN_PROVISIONER_PASSWORD:
            raise StepCAInitError(
                f"provisioner {spec['name']}: the password must be at least "
                f"{MIN_PROVISIONER_PASSWORD} characters long. step-ca serves every provisioner's "
                "encrypted key to anyone at GET /provisioners, so the password is its only "
                "protection"
            )
        if spec["profile"] not in PROFILES:
            raise StepCAInitError(
                f"provisioner {spec['name']}: profile must be one of {', '.join(PROFILES)}"
            )
    if not params["dns_names"]:
        raise StepCAInitError("dns_names must name at least one host name or address")
    if (params.get("root_rotation") or "") not in ROOT_ROTATION_PHASES:
        raise StepCAInitError(
            "root_rotation must be one of prepare, switch, finish (or empty: keep the state)"
        )


def plan(params: dict[str, Any]) -> Plan:
    """Compare the step-ca files on disk with ``params`` and decide what to write.

    ``params`` carries the module's options: config_dir, data_dir, name,
    dns_names, address, password, provisioners (name, password, profile,
    default_duration, min_duration, max_duration), regenerate and rotate_intermediate
    (see :func:`regeneration_token`), and root_rotation (see :func:`_root_rotation`).
    """
    _validate(params)
    layout = Layout(params["config_dir"], params["data_dir"])
    password = params["password"].encode()
    token = regeneration_token(params["regenerate"])
    regenerate = bool(token) and token != _recorded_token(layout.regeneration_marker)
    phase = params.get("root_rotation") or ""
    if regenerate and phase:
        raise StepCAInitError(
            f"root_rotation={phase} and a regeneration (regenerate={token}) cannot be done in"
            " one run: a regenerated PKI has nothing to rotate from"
        )
    result = Plan(regenerated=regenerate)

    # With regenerate, the keys on disk are not even decrypted: a lost CA password can
    # be recovered from this way.
    try:
        root = _load_cert(layout.root_cert)
        inter = _load_cert(layout.intermediate_cert)
    except StepCAInitError:
        if not regenerate:
            raise
        root = inter = None  # unreadable, and about to be replaced
    result.before = _pki_facts(root, inter)
    result.before.update(_rotation_on_disk(layout))
    root_key = inter_key = None
    switched = None
    if regenerate:
        root = inter = None
        result.removes += [
            path
            for path in (*layout.next_files(), layout.previous_root_cert)
            if os.path.lexists(path)
        ]
    else:
        switched = _switch_root(layout, password, phase, root, result)
        if switched is not None:
            root, root_key = switched.root, switched.root_key
            inter, inter_key = switched.intermediate, switched.intermediate_key
        else:
            root_key = _load_key(layout.root_key, password)
            inter_key = _load_key(layout.intermediate_key, password)

    new_root = root is None or root_key is None or not _crypto.same_public_key(root, root_key)
    if new_root and not regenerate and (root is not None or root_key is not None):
        # Half a root (its key moved offline, a partial restore, another key): a new root
        # would void every certificate and trust bundle, which only regenerate may do.
        missing = layout.root_key if root is not None else layout.root_cert
        raise StepCAInitError(
            f"{missing} is missing or does not belong to the CA's root. Nothing was changed:"
            " the CA's PKI is never regenerated silently. Restore the file from a backup, or"
            " set regenerate to start over (every certificate and trust bundle is replaced)"
        )
    if new_root:
        result.reasons.append(
            f"regenerating the PKI (regenerate={token})"
            if regenerate
            else "root CA missing: created"
        )
        root_key = ec.generate_private_key(ec.SECP256R1())
        root = _stepca_bootstrap.make_root(f"{params['name']} Root CA", root_key)
        result.writes += [
            FileChange(layout.root_key, _encrypted_pem(root_key, password)),
            FileChange(layout.root_cert, _pem(root)),
        ]
    inter_token = regeneration_token(params.get("rotate_intermediate"))
    rotate = bool(inter_token) and inter_token != _recorded_token(layout.intermediate_marker)
    sound = not new_root and _intermediate_fits(inter, inter_key, root)
    if not sound or rotate:
        if not sound and not new_root:
            result.reasons.append("intermediate CA missing or not issued by the root: created")
        elif sound:
            result.reasons.append(
                f"intermediate CA rotated (rotate_intermediate={inter_token}): a new key,"
                " signed by the same root; certificates issued before stay valid"
            )
        inter_key = ec.generate_private_key(ec.SECP256R1())
        inter = _stepca_bootstrap.make_intermediate(
            _ca_name(params["name"], "Intermediate CA", rotated=rotate),
            root,
            root_key,
            inter_key,
        )
        result.writes += [
            FileChange(layout.intermediate_key, _encrypted_pem(inter_key, password)),
            FileChange(layout.intermediate_cert, _pem(inter)),
        ]
    if rotate:  # written last: a run that dies before it rotates again, which is harmless
        marker = {"token": inter_token, "intermediate_fingerprint": _stepca.fingerprint(inter)}
        content = (json.dumps(marker, indent=2, sort_keys=True) + "\n").encode()
        result.writes.append(FileChange(layout.intermediate_marker, content))

    federated = _root_rotation(layout, password, phase, params["name"], switched, result)

    if _read(layout.password_file) != password:
        result.reasons.append("CA password file written")
        result.writes.append(FileChange(layout.password_file, password))

    current_config = _read_config(layout.ca_json)
    authority = current_config.get("authority", {})
    current_provisioners = authority.get("provisioners") if isinstance(authority, dict) else None
    if current_provisioners is None:
        current_provisioners = []
    if not isinstance(current_provisioners, list):
        raise StepCAInitError(f"{layout.ca_json}: authority.provisioners is not a list")
    all_provisioners, own = _merge_provisioners(
        current_provisioners, params["provisioners"], regenerate, result.reasons
    )
    desired = _stepca_bootstrap.build_ca_config(
        root_path=layout.root_cert,
        crt_path=layout.intermediate_cert,
        key_path=layout.intermediate_key,
        address=params["address"],
        dns_names=params["dns_names"],
        db_dir=layout.db_dir,
        provisioners=all_provisioners,
    )
    config = merge_ca_config(current_config, desired)
    config["federatedRoots"] = _federated_roots(current_config, layout, federated)
    if config != current_config:
        result.reasons.append("ca.json created" if not current_config else "ca.json updated")
        content = (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()
        result.writes.append(FileChange(layout.ca_json, content))

    result.root_pem = _pem(root).decode()
    result.root_fingerprint = _stepca.fingerprint(root)
    result.intermediate_fingerprint = _stepca.fingerprint(inter)
    if regenerate:
        marker = {"token": token, "root_fingerprint": result.root_fingerprint}
        content = (json.dumps(marker, indent=2, sort_keys=True) + "\n").encode()
        result.writes.append(FileChange(layout.regeneration_marker, content))
    result.provisioners = [{"name": entry["name"], "kid": entry["key"]["kid"]} for entry in own]
    result.after = _pki_facts(root, inter)
    result.after["root_rotation"] = result.root_rotation
    result.after["transition_roots"] = list(result.transition_roots)
    result.before["provisioners"] = _provisioner_labels(current_provisioners)
    result.after["provisioners"] = _provisioner_labels(all_provisioners)
    result.before["ca_json"] = _config_summary(current_config)
    result.after["ca_json"] = _config_summary(config)
    return result


# ------------------------------------------------------------------ root rotation
#
# Three phases, each a run of the module (docs/lifecycle.md, "CA rotation"):
#   prepare  a new root and an intermediate under it are made beside the CA's own
#            (certs/root_ca_next.crt, ...); step-ca serves the new root as a federated
#            root, so hosts can trust both before anything is issued under the new one;
#   switch   the new root and intermediate become the CA's own; the old root is kept as
#            certs/root_ca_previous.crt and served as a federated root, so certificates
#            issued under it stay trusted while they are re-issued;
#   finish   the old root is dropped.
# The state lives in the files, never in the inventory: a run without a phase keeps it.


@dataclass
class _Switched:
    root: Any
    root_key: Any
    intermediate: Any
    intermediate_key: Any
    old_fingerprint: str


def _ca_name(name: str, what: str, rotated: bool) -> str:
    """A CA certificate's common name; a rotated one gets the time, so two never share one."""
    if not rotated:
        return f"{name} {what}"
    return f"{name} {what} {datetime.now(timezone.utc).strftime('%Y%m%d%H%M%S')}"


def _intermediate_fits(inter: Any, inter_key: Any, root: Any) -> bool:
    """Whether an intermediate and its key are both there, belong together and chain to root."""
    return (
        inter is not None
        and inter_key is not None
        and _crypto.same_public_key(inter, inter_key)
        and _crypto.is_issued_by(inter, root)
    )


def _prepared_root_key(layout: Layout, password: bytes, prepared: Any) -> Any:
    """The prepared root's key; a missing or foreign key is damage, never made again."""
    key = _load_key(layout.next_root_key, password)
    if key is None or not _crypto.same_public_key(prepared, key):
        raise _damaged(layout.next_root_key, f"the prepared root {layout.next_root_cert}")
    return key


def _damaged(path: str, what: str) -> StepCAInitError:
    return StepCAInitError(
        f"{path} is missing or does not belong to {what}. Nothing was changed: the CA's"
        " PKI is never regenerated silently. Restore the file from a backup, or remove the"
        " rotation's *_next* files and run the prepare phase again"
    )


def _switch_root(
    layout: Layout, password: bytes, phase: str, root: Any, result: Plan
) -> _Switched | None:
    """Make the prepared root and intermediate the CA's own, for phase ``switch`` or to
    finish a switch an earlier run left half done; ``None`` when there is nothing to switch.

    The old root is written as the previous root first, then the CA's keys and certificates
    are overwritten with the prepared ones, then the prepared files are removed (their marker
    first). Every step is repeatable, so a run that dies anywhere in it is finished by the
    next run, whatever its phase.
    """
    prepared = _load_cert(layout.next_root_cert)
    previous = _load_cert(layout.previous_root_cert)
    if prepared is None:
        if phase == "switch" and previous is None:
            raise StepCAInitError(
                "root_rotation=switch: no root rotation is prepared (there is no"
                f" {layout.next_root_cert}); run the prepare phase first"
            )
        return None
    interrupted = previous is not None
    if not interrupted and phase != "switch":
        return None
    if interrupted and phase in ("prepare", "finish"):
        raise StepCAInitError(
            f"root_rotation={phase}: an earlier switch to the new root was interrupted;"
            " run the switch phase to finish it first"
        )
    key = _prepared_root_key(layout, password, prepared)
    inter = _load_cert(layout.next_intermediate_cert)
    inter_key = _load_key(layout.next_intermediate_key, password)
    if not _intermediate_fits(inter, inter_key, prepared):
        raise _damaged(layout.next_intermediate_key, "the prepared intermediate")
    new_fp = _stepca.fingerprint(prepared)
    if root is not None and _stepca.fingerprint(root) != new_fp:
        # Kept before the CA's own root is replaced: it is trusted until the finish phase.
        result.writes.append(FileChange(layout.previous_root_cert, _pem(root)))
        old_fp = _stepca.fingerprint(root)
    else:
        old_fp = _stepca.fingerprint(previous) if previous is not None else ""
    for source, target in (
        (layout.next_root_key, layout.root_key),
        (layout.next_root_cert, layout.root_cert),
        (layout.next_intermediate_key, layout.intermediate_key),
        (layout.next_intermediate_cert, layout.intermediate_cert),
    ):
        content = _read(source)
        if content is not None and _read(target) != content:
            result.writes.append(FileChange(target, content))
    result.removes += [path for path in layout.next_files() if os.path.lexists(path)]
    result.reasons.append(
        f"root rotation switched{' (finished an interrupted switch)' if interrupted else ''}:"
        f" the CA signs under the new root {new_fp}; the old root {old_fp or '(unknown)'} stays"
        " trusted until the finish phase"
    )
    return _Switched(prepared, key, inter, inter_key, old_fp)


def _root_rotation(
    layout: Layout,
    password: bytes,
    phase: str,
    name: str,
    switched: _Switched | None,
    result: Plan,
) -> list[str]:
    """Prepare or finish a root rotation, record its state in ``result``, and return the
    rotation's root certificate files that step-ca must serve as federated roots."""
    if result.regenerated:
        return []
    if switched is not None:
        if switched.old_fingerprint:
            result.root_rotation = "switched"
            result.transition_roots = [switched.old_fingerprint]
            return [layout.previous_root_cert]
        return []
    prepared = _load_cert(layout.next_root_cert)
    previous = _load_cert(layout.previous_root_cert)
    if phase == "prepare":
        if previous is not None:
            raise StepCAInitError(
                "root_rotation=prepare: the last root rotation is switched but not finished"
                f" (the old root {_stepca.fingerprint(previous)} is still trusted); run the"
                " finish phase before preparing another"
            )
        prepared = _prepare_root(layout, password, name, prepared, result)
    elif phase == "finish":
        if prepared is not None:
            raise StepCAInitError(
                "root_rotation=finish: the root rotation is prepared but not switched; run the"
                " switch phase, re-issue every certificate, then finish"
            )
        if previous is not None:
            result.removes.append(layout.previous_root_cert)
            result.reasons.append(
                f"root rotation finished: the old root {_stepca.fingerprint(previous)} is no"
                " longer trusted"
            )
            return []
    if prepared is None:
        # A prepare that died before its marker was written: its files are of no use.
        leftovers = [p for p in layout.next_files()[1:] if os.path.lexists(p)]
        if leftovers:
            result.removes += leftovers
            result.reasons.append("removed the files of an unfinished prepare phase")
    if prepared is not None:
        result.root_rotation = "prepared"
        result.transition_roots = [_stepca.fingerprint(prepared)]
        return [layout.next_root_cert]
    if previous is not None:
        result.root_rotation = "switched"
        result.transition_roots = [_stepca.fingerprint(previous)]
        return [layout.previous_root_cert]
    return []


def _prepare_root(layout: Layout, password: bytes, name: str, prepared: Any, result: Plan) -> Any:
    """The next root (made when missing) and an intermediate under it; returns the root."""
    if prepared is None:
        key = ec.generate_private_key(ec.SECP256R1())
        prepared = _stepca_bootstrap.make_root(_ca_name(name, "Root CA", rotated=True), key)
        # The key first: the certificate is the marker of a prepared rotation.
        result.writes += [
            FileChange(layout.next_root_key, _encrypted_pem(key, password)),
            FileChange(layout.next_root_cert, _pem(prepared)),
        ]
        result.reasons.append(
            f"root rotation prepared: a new root {_stepca.fingerprint(prepared)}, trusted beside"
            " the CA's own until the switch phase makes it the CA's"
        )
        inter = inter_key = None
    else:
        key = _prepared_root_key(layout, password, prepared)
        inter = _load_cert(layout.next_intermediate_cert)
        inter_key = _load_key(layout.next_intermediate_key, password)
    if not _intermediate_fits(inter, inter_key, prepared):
        # Nothing has used an intermediate that is not switched in yet: safe to make again.
        inter_key = ec.generate_private_key(ec.SECP256R1())
        inter = _stepca_bootstrap.make_intermediate(
            _ca_name(name, "Intermediate CA", rotated=True), prepared, key, inter_key
        )
        result.writes += [
            FileChange(layout.next_intermediate_key, _encrypted_pem(inter_key, password)),
            FileChange(layout.next_intermediate_cert, _pem(inter)),
        ]
    return prepared


def _rotation_on_disk(layout: Layout) -> dict[str, Any]:
    """The rotation state the files show, for the diff (unreadable files count as absent)."""
    for state, path in (
        ("prepared", layout.next_root_cert),
        ("switched", layout.previous_root_cert),
    ):
        try:
            other = _load_cert(path)
        except StepCAInitError:
            other = None
        if other is not None:
            return {"root_rotation": state, "transition_roots": [_stepca.fingerprint(other)]}
    return {"root_rotation": "none", "transition_roots": []}


def _federated_roots(current: dict[str, Any], layout: Layout, rotation: list[str]) -> Any:
    """ca.json's federatedRoots: the operator's own entries, then the rotation's root."""
    entries = current.get("federatedRoots")
    own = (layout.next_root_cert, layout.previous_root_cert)
    kept = [e for e in entries if e not in own] if isinstance(entries, list) else []
    merged = kept + rotation
    if merged:
        return merged
    return entries if entries in (None, []) else None


def _recorded_token(path: str) -> str | None:
    """The value recorded in a marker file by the last regeneration or rotation, or None."""
    data = _read(path)
    if data is None:
        return None
    try:
        marker = json.loads(data)
    except ValueError:
        return None
    token = marker.get("token") if isinstance(marker, dict) else None
    return token if isinstance(token, str) else None


def _provisioner_labels(entries: list[Any]) -> list[str]:
    return sorted(
        f"{p.get('name')} ({(p.get('key') or {}).get('kid')})"
        for p in entries
        if isinstance(p, dict)
    )


def _read_config(path: str) -> dict[str, Any]:
    data = _read(path)
    if data is None:
        return {}
    try:
        config = json.loads(data)
    except ValueError as exc:
        raise StepCAInitError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise StepCAInitError(f"{path} does not hold a JSON object")
    return config


def _pki_facts(root: x509.Certificate | None, inter: x509.Certificate | None) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    for label, cert in (("root", root), ("intermediate", inter)):
        if cert is not None:
            facts[label] = {
                "subject": cert.subject.rfc4514_string(),
                "fingerprint": _stepca.fingerprint(cert),
                "not_after": _crypto.not_valid_after(cert).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
    return facts


def _config_summary(config: dict[str, Any]) -> dict[str, Any]:
    """The parts of ca.json worth showing in a diff; never the encrypted keys."""
    if not config:
        return {}
    return {
        "address": config.get("address"),
        "dnsNames": config.get("dnsNames"),
        "provisioner_claims": {
            p.get("name"): p.get("claims")
            for p in (config.get("authority") or {}).get("provisioners") or []
            if isinstance(p, dict)
        },
    }
