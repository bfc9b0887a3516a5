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
    reasons: list[str] = field(default_factory=list)
    root_pem: str = ""
    root_fingerprint: str = ""
    provisioners: list[dict[str, str]] = field(default_factory=list)
    regenerated: bool = False
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


def plan(params: dict[str, Any]) -> Plan:
    """Compare the step-ca files on disk with ``params`` and decide what to write.

    ``params`` carries the module's options: config_dir, data_dir, name,
    dns_names, address, password, provisioners (name, password, profile,
    default_duration, min_duration, max_duration) and regenerate (see
    :func:`regeneration_token`).
    """
    _validate(params)
    layout = Layout(params["config_dir"], params["data_dir"])
    password = params["password"].encode()
    token = regeneration_token(params["regenerate"])
    regenerate = bool(token) and token != _recorded_token(layout)
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
    root_key = inter_key = None
    if regenerate:
        root = inter = None
    else:
        root_key = _load_key(layout.root_key, password)
        inter_key = _load_key(layout.intermediate_key, password)

    new_root = root is None or root_key is None or not _crypto.same_public_key(root, root_key)
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
    if (
        new_root
        or inter is None
        or inter_key is None
        or not _crypto.same_public_key(inter, inter_key)
        or not _crypto.is_issued_by(inter, root)
    ):
        if not new_root:
            result.reasons.append("intermediate CA missing or not issued by the root: created")
        inter_key = ec.generate_private_key(ec.SECP256R1())
        inter = _stepca_bootstrap.make_intermediate(
            f"{params['name']} Intermediate CA", root, root_key, inter_key
        )
        result.writes += [
            FileChange(layout.intermediate_key, _encrypted_pem(inter_key, password)),
            FileChange(layout.intermediate_cert, _pem(inter)),
        ]

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
    if config != current_config:
        result.reasons.append("ca.json created" if not current_config else "ca.json updated")
        content = (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()
        result.writes.append(FileChange(layout.ca_json, content))

    result.root_pem = _pem(root).decode()
    result.root_fingerprint = _stepca.fingerprint(root)
    if regenerate:
        marker = {"token": token, "root_fingerprint": result.root_fingerprint}
        content = (json.dumps(marker, indent=2, sort_keys=True) + "\n").encode()
        result.writes.append(FileChange(layout.regeneration_marker, content))
    result.provisioners = [{"name": entry["name"], "kid": entry["key"]["kid"]} for entry in own]
    result.after = _pki_facts(root, inter)
    result.before["provisioners"] = _provisioner_labels(current_provisioners)
    result.after["provisioners"] = _provisioner_labels(all_provisioners)
    result.before["ca_json"] = _config_summary(current_config)
    result.after["ca_json"] = _config_summary(config)
    return result


def _recorded_token(layout: Layout) -> str | None:
    """The regenerate value recorded by the last regeneration, or None."""
    data = _read(layout.regeneration_marker)
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
