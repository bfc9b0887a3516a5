# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backends of the step_ca_sign, step_ca_info and step_ca_revoke modules.

Each module's ``main()`` is :func:`run_module` with its argument spec and an action
(:func:`run_sign`, :func:`run_info`, :func:`run_revoke`). An action turns the module's
``params`` into typed values once, at the boundary (:class:`Connection`,
:class:`Provisioner`, :class:`SignJob`, :class:`InfoJob`, :class:`RevokeJob`), and then
works only with those, the client (``_stepca``) and the token rules (``_stepca_token``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Union

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.mtls.rollout.plugins.module_utils import _stepca, _stepca_token
from ansible_collections.mtls.rollout.plugins.module_utils._stepca import (
    SignOutcome,
    StepCAError,
)
from ansible_collections.mtls.rollout.plugins.module_utils._stepca_token import SignRequest

try:
    from cryptography import x509

    from ansible_collections.mtls.rollout.plugins.module_utils import _crypto, _io
except ImportError:  # run_module reports it with missing_required_lib
    pass

# A csrs item: its request, or the reason it has none.
SignItem = Union[SignRequest, StepCAError]

MODULE_CONNECTION_SPEC: dict[str, Any] = {
    "ca_url": {"type": "str", "required": True},
    "root": {"type": "path"},
    "root_fingerprint": {"type": "str"},
    "timeout": {"type": "float", "default": _stepca.DEFAULT_TIMEOUT},
    "retries": {"type": "int", "default": _stepca.DEFAULT_RETRIES},
}
MODULE_CONNECTION_RULES: dict[str, list[list[str]]] = {
    "required_one_of": [["root", "root_fingerprint"]],
}

# The provisioner whose key signs the tokens: shared by step_ca_sign and step_ca_revoke.
PROVISIONER_SPEC: dict[str, Any] = {
    "provisioner": {"type": "str", "required": True},
    "provisioner_password": {"type": "str", "no_log": True},
    "provisioner_password_file": {"type": "path", "no_log": False},
}
_PROVISIONER_PASSWORD_OPTIONS = ["provisioner_password", "provisioner_password_file"]

_ITEM_OPTIONS = ("not_before", "not_after", "duration", "subject_alt_names", "common_name")

SIGN_ARGUMENT_SPEC: dict[str, Any] = {
    **MODULE_CONNECTION_SPEC,
    **PROVISIONER_SPEC,
    "csr": {"type": "str"},
    "csrs": {"type": "list", "elements": "raw"},
    "not_before": {"type": "str"},
    "not_after": {"type": "str"},
    "duration": {"type": "str"},
    "subject_alt_names": {"type": "list", "elements": "str"},
    "common_name": {"type": "str"},
    "workers": {"type": "int", "default": 4},
}
SIGN_RULES: dict[str, list[list[str]]] = {
    "required_one_of": [
        ["root", "root_fingerprint"],
        _PROVISIONER_PASSWORD_OPTIONS,
        ["csr", "csrs"],
    ],
    "mutually_exclusive": [
        _PROVISIONER_PASSWORD_OPTIONS,
        ["csr", "csrs"],
        ["not_after", "duration"],
    ],
}

# step_ca_info accepts (and ignores) the provisioner options, so that one
# module_defaults entry for group/mtls.rollout.step_ca can carry them (meta/runtime.yml).
INFO_ARGUMENT_SPEC: dict[str, Any] = {
    **MODULE_CONNECTION_SPEC,
    **{name: dict(arg, required=False) for name, arg in PROVISIONER_SPEC.items()},
    "wait_timeout": {"type": "float", "default": 0.0},
    "wait_interval": {"type": "float", "default": 1.0},
    "provisioners": {"type": "bool", "default": True},
}
MAX_WAIT_TIMEOUT = 3600.0


# --------------------------------------------------------------------------- typed options


def _read_file(path: str, what: str) -> bytes:
    """The content of ``path`` (through :func:`_io.read_bytes`); a missing file is an error."""
    try:
        data = _io.read_bytes(path)
    except _io.FileIOError as exc:
        raise StepCAError(f"cannot read {what}: {exc}", kind="invalid") from None
    if data is None:
        raise StepCAError(f"cannot read {what} {path}: it does not exist", kind="invalid")
    return data


def read_password_file(path: str) -> bytes:
    """Read a password file; trailing white space (the newline) is dropped, as step does."""
    data = _read_file(path, "the password file").rstrip()
    if not data:
        raise StepCAError(f"the password file {path} is empty", kind="invalid")
    return data


@dataclass(frozen=True)
class Connection:
    """The CA connection options (``ca_connection`` doc fragment), checked."""

    ca_url: str
    root_pem: bytes | None
    root_fingerprint: str | None
    timeout: float
    retries: int

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Connection:
        root_pem = None
        if params.get("root"):
            root_pem = _read_file(params["root"], "the root certificate")
        retries = params.get("retries", _stepca.DEFAULT_RETRIES)
        if retries > 10:
            raise StepCAError("retries must be at most 10", kind="invalid")
        return cls(
            ca_url=params["ca_url"],
            root_pem=root_pem,
            root_fingerprint=params.get("root_fingerprint") or None,
            timeout=params.get("timeout") or _stepca.DEFAULT_TIMEOUT,
            retries=retries,
        )

    def client(self) -> _stepca.StepCAClient:
        """A client pinned to the root (validates the URL and the pin)."""
        return _stepca.StepCAClient(
            self.ca_url,
            root_pem=self.root_pem,
            root_fingerprint=self.root_fingerprint,
            timeout=self.timeout,
            retries=self.retries,
        )


@dataclass(frozen=True)
class Provisioner:
    """The JWK provisioner and its password (read from the file once; never shown)."""

    name: str
    password: bytes = field(repr=False)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Provisioner:
        if params.get("provisioner_password_file"):
            password = read_password_file(params["provisioner_password_file"])
        else:
            password = (params.get("provisioner_password") or "").encode()
            if not password:
                raise StepCAError("provisioner_password is empty", kind="invalid")
        return cls(name=params["provisioner"], password=password)


# --------------------------------------------------------------------------- step_ca_sign


def _sign_request(item: Any, defaults: dict[str, Any], where: str) -> SignRequest:
    """One :class:`SignRequest` from a ``csrs`` item (or the ``csr`` options)."""
    if isinstance(item, str):
        item = {"csr": item}
    if not isinstance(item, dict) or not isinstance(item.get("csr"), str):
        raise StepCAError(f"{where} must be a PEM CSR or a dict with a csr key", kind="invalid")
    unknown = sorted(set(item) - {"csr", *_ITEM_OPTIONS})
    if unknown:
        raise StepCAError(f"{where}: unknown keys {', '.join(unknown)}", kind="invalid")
    # An item's own not_after or duration replaces both defaults.
    if item.get("not_after") or item.get("duration"):
        not_after, duration = item.get("not_after"), item.get("duration")
    else:
        not_after, duration = defaults["not_after"], defaults["duration"]
    sans = item.get("subject_alt_names")
    if sans is not None and (
        not isinstance(sans, list) or not all(isinstance(v, str) for v in sans)
    ):
        raise StepCAError(f"{where}: subject_alt_names must be a list of strings", kind="invalid")
    return SignRequest(
        csr=item["csr"],
        not_before=item.get("not_before") or defaults["not_before"],
        not_after=not_after,
        duration=duration,
        # None (not given) takes the CSR's SANs; [] authorises the common name alone.
        sans=None if sans is None else list(sans),
        subject=item.get("common_name") or None,
    )


@dataclass(frozen=True)
class SignJob:
    """A ``step_ca_sign`` call: one CSR (``single``) or a batch, item by item."""

    connection: Connection
    provisioner: Provisioner
    items: list[SignItem]
    single: bool
    workers: int

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> SignJob:
        """Errors that concern the whole call raise; a bad ``csrs`` item becomes its error."""
        workers = params.get("workers", 4)
        if not 1 <= workers <= _stepca.MAX_WORKERS:
            raise StepCAError(
                f"workers must be between 1 and {_stepca.MAX_WORKERS}", kind="invalid"
            )
        return cls(
            connection=Connection.from_params(params),
            provisioner=Provisioner.from_params(params),
            items=sign_items(params),
            single=params.get("csr") is not None,
            workers=workers,
        )


def sign_items(params: dict[str, Any]) -> list[SignItem]:
    """The requests of ``csr`` or ``csrs``: for each bad ``csrs`` item, its error.

    Errors that concern every item (such as a bad module-level duration) raise.
    """
    try:
        defaults = {
            option: _stepca_token.check_time_value(params.get(option), option)
            for option in ("not_before", "not_after", "duration")
        }
    except _stepca_token.TokenError as exc:
        raise StepCAError(str(exc), kind=exc.kind) from None
    if params.get("csr") is not None:
        item = {
            "csr": params["csr"],
            "subject_alt_names": params.get("subject_alt_names"),
            "common_name": params.get("common_name"),
        }
        return [_sign_request(item, defaults, "csr")]
    if params.get("subject_alt_names") is not None or params.get("common_name"):
        raise StepCAError(
            "subject_alt_names and common_name apply to csr; with csrs, set them per item",
            kind="invalid",
        )
    raw = list(params.get("csrs") or [])
    if not raw:
        raise StepCAError("csrs is empty: nothing to sign", kind="invalid")
    items: list[SignItem] = []
    for index, entry in enumerate(raw):
        try:
            items.append(_sign_request(entry, defaults, f"csrs[{index}]"))
        except StepCAError as exc:
            items.append(exc)
    return items


def sign(job: SignJob, check_mode: bool) -> dict[str, Any]:
    """``step_ca_sign``: with one CSR any failure raises; a batch reports each item.

    A batch's result holds ``results``, one per item in order (a certificate, or the
    reason there is none), and ``failed_count``. Only errors that concern the whole
    batch raise, and they are found before anything is signed: bad options, an
    unreachable CA, a root fingerprint mismatch, an unknown provisioner, a wrong
    password. ``changed`` is true when at least one certificate was issued (in check
    mode: would be).
    """
    client = job.connection.client()
    outcomes: list[SignOutcome | None] = [
        SignOutcome(error=item) if isinstance(item, StepCAError) else None for item in job.items
    ]
    valid = [(index, item) for index, item in enumerate(job.items) if isinstance(item, SignRequest)]
    result: dict[str, Any] = {"provisioner": job.provisioner.name}
    if check_mode:
        for index, request in valid:
            try:
                client.prepare(request)
            except StepCAError as exc:
                outcomes[index] = SignOutcome(error=exc)
            else:
                outcomes[index] = SignOutcome()
    else:
        key = client.provisioner_key(job.provisioner.name, job.provisioner.password)
        signed = client.sign_many(key, [item[1] for item in valid], workers=job.workers)
        for position, (index, _request) in enumerate(valid):
            outcomes[index] = signed[position]
        result["root_fingerprint"] = client.root_fingerprint
    if job.single:
        outcome = outcomes[0]
        if outcome is None:  # cannot happen; narrows the type
            raise AssertionError("outcome is unset")
        if outcome.error is not None:
            raise outcome.error
        result["changed"] = True
        if outcome.certificate is not None:
            result.update(outcome.certificate.as_dict())
        return result
    items = []
    for outcome in outcomes:
        if outcome is None:  # cannot happen; narrows the type
            raise AssertionError("outcome is unset")
        items.append({"ok": True} if check_mode and outcome.error is None else outcome.as_dict())
    result["results"] = items
    result["failed_count"] = sum(1 for item in items if not item["ok"])
    result["changed"] = result["failed_count"] < len(items)
    return result


def run_sign(params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    """The ``step_ca_sign`` action: :meth:`SignJob.from_params`, then :func:`sign`."""
    return sign(SignJob.from_params(params), check_mode)


# --------------------------------------------------------------------------- step_ca_info

MAX_WAIT_TIMEOUT = 3600.0


@dataclass(frozen=True)
class InfoJob:
    """A ``step_ca_info`` call."""

    connection: Connection
    wait_timeout: float
    wait_interval: float
    provisioners: bool

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> InfoJob:
        wait_timeout = params.get("wait_timeout") or 0.0
        if not 0 <= wait_timeout <= MAX_WAIT_TIMEOUT:
            raise StepCAError(
                f"wait_timeout must be between 0 and {MAX_WAIT_TIMEOUT:g} seconds",
                kind="invalid",
            )
        return cls(
            connection=Connection.from_params(params),
            wait_timeout=wait_timeout,
            wait_interval=max(0.1, params.get("wait_interval") or 1.0),
            provisioners=params.get("provisioners", True),
        )


def _cert_facts(cert: x509.Certificate) -> dict[str, Any]:
    return {
        "subject": cert.subject.rfc4514_string(),
        "fingerprint": _crypto.certificate_fingerprint(cert),
        "not_after": _stepca_token.rfc3339(_crypto.not_valid_after(cert)),
    }


def info(job: InfoJob) -> dict[str, Any]:
    """``step_ca_info``: health, version, verified roots, provisioners."""
    client = job.connection.client()
    if job.wait_timeout:
        health = client.wait_healthy(job.wait_timeout, job.wait_interval)
    else:
        health = client.health()
    version = client.version().get("version", "")
    roots = client.roots()
    pinned = client.root_fingerprint
    if pinned not in [_crypto.certificate_fingerprint(root) for root in roots]:
        raise StepCAError(
            f"root fingerprint mismatch: the CA at {client.base_url} does not list the pinned"
            f" root {pinned} among its roots",
            kind="fingerprint_mismatch",
        )
    result: dict[str, Any] = {
        "changed": False,
        "health": health,
        "version": version,
        "root_certificate": client.root_pem,
        "root_fingerprint": pinned,
        "roots": [dict(_cert_facts(root), pem=_stepca.cert_pem(root)) for root in roots],
    }
    if job.provisioners:
        result["provisioners"] = [
            {
                "name": entry.get("name"),
                "type": entry.get("type"),
                "kid": (entry.get("key") or {}).get("kid"),
                "claims": entry.get("claims") or {},
            }
            for entry in client.provisioners()
        ]
    return result


def run_info(params: dict[str, Any], _check_mode: bool = False) -> dict[str, Any]:
    """The ``step_ca_info`` action (it only reads, so check mode changes nothing)."""
    return info(InfoJob.from_params(params))


# --------------------------------------------------------------------------- step_ca_revoke

# RFC 5280 section 5.3.1 CRLReason codes (7 is unused).
REVOCATION_REASONS: dict[str, int] = {
    "unspecified": 0,
    "keyCompromise": 1,
    "cACompromise": 2,
    "affiliationChanged": 3,
    "superseded": 4,
    "cessationOfOperation": 5,
    "certificateHold": 6,
    "removeFromCRL": 8,
    "privilegeWithdrawn": 9,
    "aACompromise": 10,
}
_REASON_BY_FOLDED = {name.lower(): code for name, code in REVOCATION_REASONS.items()}
# step-ca 0.19 answers a second revocation of a serial with 400 and this text.
_ALREADY_REVOKED = "is already revoked"

REVOKE_ARGUMENT_SPEC: dict[str, Any] = {
    **MODULE_CONNECTION_SPEC,
    **PROVISIONER_SPEC,
    "serial": {"type": "raw"},
    "certificate": {"type": "str"},
    "reason": {"type": "str", "default": ""},
    "reason_code": {"type": "raw", "default": 0},
}
REVOKE_RULES: dict[str, list[list[str]]] = {
    "required_one_of": [
        ["root", "root_fingerprint"],
        _PROVISIONER_PASSWORD_OPTIONS,
        ["serial", "certificate"],
    ],
    "mutually_exclusive": [
        _PROVISIONER_PASSWORD_OPTIONS,
        ["serial", "certificate"],
    ],
}


def parse_reason_code(value: Any) -> int:
    """An RFC 5280 reason code from an integer, a digit string or a name.

    Names are case-insensitive and may use ``_``, ``-`` or spaces
    (``keyCompromise``, ``key_compromise``). 7 is unused in RFC 5280 and 8
    (``removeFromCRL``) would revoke rather than release, so both are refused.
    """
    code: int | None = None
    if isinstance(value, bool):
        code = None
    elif isinstance(value, int):
        code = value
    elif isinstance(value, str):
        text = value.strip()
        if re.match(r"^-?[0-9]+$", text):
            code = int(text)
        else:
            code = _REASON_BY_FOLDED.get(re.sub(r"[\s_-]", "", text).lower())
    elif value is None:
        code = 0
    known = ", ".join(f"{number} ({name})" for name, number in REVOCATION_REASONS.items())
    if code is None or code not in REVOCATION_REASONS.values():
        raise StepCAError(
            f"reason_code must be an RFC 5280 reason code or its name, got {value!r};"
            f" known: {known}",
            kind="invalid",
        )
    if code == REVOCATION_REASONS["removeFromCRL"]:
        raise StepCAError(
            "reason_code 8 (removeFromCRL) is refused: it would revoke the certificate,"
            " and step-ca cannot lift a revocation",
            kind="invalid",
        )
    return code


@dataclass(frozen=True)
class RevokeJob:
    """A ``step_ca_revoke`` call."""

    connection: Connection
    provisioner: Provisioner
    serial: int
    facts: dict[str, Any]  # subject and not_after when a certificate was given
    reason: str
    reason_code: int

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> RevokeJob:
        serial, facts = _revoke_target(params)
        reason_code = parse_reason_code(params.get("reason_code"))
        connection = Connection.from_params(params)
        connection.client()  # validates ca_url and the pin before anything is read
        return cls(
            connection=connection,
            provisioner=Provisioner.from_params(params),
            serial=serial,
            facts=facts,
            reason=params.get("reason") or "",
            reason_code=reason_code,
        )


def _revoke_target(params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The serial to revoke, and facts about the certificate when one was given."""
    has_serial = params.get("serial") not in (None, "")
    has_cert = bool(params.get("certificate"))
    if has_serial == has_cert:
        raise StepCAError("give exactly one of serial and certificate", kind="invalid")
    if has_serial:
        return _stepca.parse_serial(params["serial"]), {}
    try:
        cert = x509.load_pem_x509_certificate(params["certificate"].encode())
    except ValueError:
        raise StepCAError(
            "certificate is not a PEM certificate; give the PEM text itself, for example"
            " with lookup('ansible.builtin.file', path)",
            kind="invalid",
        ) from None
    facts = {
        "subject": cert.subject.rfc4514_string(),
        "not_after": _stepca_token.rfc3339(_crypto.not_valid_after(cert)),
    }
    return _stepca.parse_serial(cert.serial_number), facts


def is_already_revoked(exc: _stepca.StepCAError, serial: int | None = None) -> bool:
    """Whether ``exc`` is step-ca 0.19's answer to revoking a revoked serial again.

    With ``serial``, the answer must also name that serial (in decimal).
    """
    if exc.status != 400 or _ALREADY_REVOKED not in str(exc):
        return False
    return serial is None or f"'{serial}' {_ALREADY_REVOKED}" in str(exc)


def revoke(job: RevokeJob, check_mode: bool) -> dict[str, Any]:
    """``step_ca_revoke``: passive revocation, honest about ``changed``.

    step-ca 0.19 has no read-only way to ask whether a serial is revoked, so a
    revocation is attempted, and the CA's "already revoked" answer (HTTP 400)
    becomes ``changed=False``. Check mode validates everything locally, reads the
    password file, and contacts no CA; it predicts ``changed=True``.
    """
    result: dict[str, Any] = {
        "changed": True,
        "provisioner": job.provisioner.name,
        "serial": str(job.serial),
        "serial_hex": _crypto.serial_hex(job.serial),
        "reason_code": job.reason_code,
        "reason": job.reason,
        "revoked": False,
        **job.facts,
    }
    if job.reason_code == REVOCATION_REASONS["certificateHold"]:
        result["warnings"] = [
            "reason_code 6 (certificateHold) is permanent with step-ca 0.19:"
            " a passive revocation cannot be lifted"
        ]
    if check_mode:
        return result
    client = job.connection.client()
    key = client.provisioner_key(job.provisioner.name, job.provisioner.password)
    try:
        client.revoke(key, job.serial, reason=job.reason, reason_code=job.reason_code)
    except StepCAError as exc:
        if not is_already_revoked(exc, job.serial):
            raise
        result["changed"] = False
        result["already_revoked"] = True
    else:
        result["already_revoked"] = False
    result["revoked"] = True
    result["root_fingerprint"] = client.root_fingerprint
    return result


def run_revoke(params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    """The ``step_ca_revoke`` action: :meth:`RevokeJob.from_params`, then :func:`revoke`."""
    return revoke(RevokeJob.from_params(params), check_mode)


# --------------------------------------------------------------------------- main()


def run_module(
    argument_spec: dict[str, Any],
    rules: dict[str, Any],
    action: Callable[[dict[str, Any], bool], dict[str, Any]],
) -> None:
    """The whole ``main()`` of a step-ca module: parse the options, run ``action``, report.

    ``action(params, check_mode)`` returns the result; a :class:`StepCAError` becomes
    ``fail_json`` with its message and ``error_kind``.
    """
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True, **rules)
    if _stepca.CRYPTOGRAPHY_IMPORT_ERROR:
        module.fail_json(
            msg=missing_required_lib("cryptography"), exception=_stepca.CRYPTOGRAPHY_IMPORT_ERROR
        )
    try:
        result = action(module.params, module.check_mode)
    except StepCAError as exc:
        module.fail_json(msg=str(exc), error_kind=exc.kind)
    module.exit_json(**result)
