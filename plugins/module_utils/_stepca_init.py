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
    _jose,
    _stepca,
    _stepca_bootstrap,
)

PROFILES = ("client", "server", "any")


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
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StepCAInitError(f"cannot read {path}: {exc.strerror}") from exc


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


def _provisioner_entries(
    specs: list[dict[str, Any]], current: list[dict[str, Any]], regenerate: bool, reasons: list[str]
) -> list[dict[str, Any]]:
    by_name = {entry.get("name"): entry for entry in current}
    entries = []
    for spec in specs:
        name = spec["name"]
        template = _template_for(spec["profile"])
        password = spec["password"].encode()
        existing = None if regenerate else by_name.get(name)
        if _reuse_provisioner(existing, password):
            entry = dict(existing)
            entry["claims"] = _claims(spec)
            options = dict(entry.get("options") or {})
            if template is None:
                options.pop("x509", None)
            else:
                options["x509"] = {"template": template}
            if options:
                entry["options"] = options
            else:
                entry.pop("options", None)
        else:
            entry = _stepca_bootstrap.make_jwk_provisioner(name, password, _claims(spec), template)
            reasons.append(
                f"provisioner {name}: new key"
                if existing is None
                else f"provisioner {name}: password changed, new key"
            )
        entries.append(entry)
    return entries


def _validate(params: dict[str, Any]) -> None:
    if len(params["password"]) < 8:
        raise StepCAInitError("the CA password must be at least 8 characters long")
    names = [spec["name"] for spec in params["provisioners"]]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise StepCAInitError(f"provisioner names must be unique: {', '.join(duplicates)}")
    for spec in params["provisioners"]:
        if len(spec["password"]) < 8:
            raise StepCAInitError(
                f"provisioner {spec['name']}: the password must be at least 8 characters long"
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
    default_duration, min_duration, max_duration) and regenerate.
    """
    _validate(params)
    layout = Layout(params["config_dir"], params["data_dir"])
    password = params["password"].encode()
    regenerate = params["regenerate"]
    result = Plan()

    root = None if regenerate else _load_cert(layout.root_cert)
    root_key = None if regenerate else _load_key(layout.root_key, password)
    inter = None if regenerate else _load_cert(layout.intermediate_cert)
    inter_key = None if regenerate else _load_key(layout.intermediate_key, password)
    result.before = _pki_facts(root, inter)

    new_root = root is None or root_key is None or not _crypto.same_public_key(root, root_key)
    if new_root:
        result.reasons.append("regenerating the PKI" if regenerate else "root CA missing: created")
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
    current_provisioners = current_config.get("authority", {}).get("provisioners", [])
    provisioners = _provisioner_entries(
        params["provisioners"], current_provisioners, regenerate, result.reasons
    )
    config = _stepca_bootstrap.build_ca_config(
        root_path=layout.root_cert,
        crt_path=layout.intermediate_cert,
        key_path=layout.intermediate_key,
        address=params["address"],
        dns_names=params["dns_names"],
        db_dir=layout.db_dir,
        provisioners=provisioners,
    )
    if config != current_config:
        result.reasons.append("ca.json created" if not current_config else "ca.json updated")
        content = (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()
        result.writes.append(FileChange(layout.ca_json, content))

    result.root_pem = _pem(root).decode()
    result.root_fingerprint = _stepca.fingerprint(root)
    result.provisioners = [
        {"name": entry["name"], "kid": entry["key"]["kid"]} for entry in provisioners
    ]
    result.after = _pki_facts(root, inter)
    result.before["provisioners"] = sorted(
        f"{p.get('name')} ({p.get('key', {}).get('kid')})" for p in current_provisioners
    )
    result.after["provisioners"] = sorted(f"{p['name']} ({p['kid']})" for p in result.provisioners)
    result.before["ca_json"] = _config_summary(current_config)
    result.after["ca_json"] = _config_summary(config)
    return result


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
            for p in config.get("authority", {}).get("provisioners", [])
        },
    }
