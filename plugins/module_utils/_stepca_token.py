# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One-time tokens of a step-ca JWK provisioner: what a token authorises, and the token.

* :func:`decrypt_provisioner_key` turns the provisioner's encrypted key (a PBES2 JWE)
  into a :class:`ProvisionerKey`, once per run.
* :func:`authorise` says what the token for a :class:`SignRequest` carries: the subject
  and the SANs of :func:`_crypto.certificate_sans`. It refuses a CSR that asks for more,
  bad times, and a validity outside the provisioner's limits.
* :func:`mint_token` signs the token.

No HTTP here (see ``_stepca``). Errors are :class:`TokenError`, with the same ``kind``
names as ``_stepca.StepCAError``; no message carries a password, a key or a token.
"""

from __future__ import annotations

import datetime
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

try:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    from ansible_collections.mtls.rollout.plugins.module_utils import _crypto, _jose
except ImportError:  # the modules report it (see _stepca.CRYPTOGRAPHY_IMPORT_ERROR)
    pass

TOKEN_LIFETIME = 300  # seconds, like step's default
# step-ca's validity check allows max + backdate (one minute by default).
_BACKDATE_TOLERANCE = datetime.timedelta(minutes=1)


class TokenError(Exception):
    """A request cannot get a token; ``kind`` is ``invalid``, ``san_not_allowed``,
    ``duration`` or ``wrong_password``."""

    def __init__(self, message: str, *, kind: str = "invalid") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class ProvisionerKey:
    """A decrypted JWK provisioner key; never printed (``repr`` hides the JWK)."""

    name: str
    kid: str
    jwk: dict[str, Any] = field(repr=False)
    claims: dict[str, Any] = field(default_factory=dict)


@dataclass
class SignRequest:
    """One CSR to sign, with optional validity and authorised identity.

    ``not_before``/``not_after`` are RFC 3339 times or durations as step-ca takes
    them (a ``not_after`` duration counts from ``not_before``); ``duration`` is a
    shorthand for a ``not_after`` duration.

    ``subject`` and ``sans`` are what the token authorises (see
    :func:`_crypto.certificate_sans`): ``sans=[]`` authorises the common name alone,
    as step-ca puts it in the certificate; ``sans=None`` takes the CSR's own SANs,
    which trusts whoever made the CSR, so it is for ad hoc use only. ``subject``
    defaults to the CSR's common name.
    """

    csr: str
    not_before: str | None = None
    not_after: str | None = None
    duration: str | None = None
    sans: list[str] | None = None
    subject: str | None = None

    def effective_not_after(self) -> str | None:
        """``not_after`` if set, else ``duration``."""
        return self.not_after or self.duration or None


@dataclass(frozen=True)
class Authorisation:
    """What the token for one request carries, and the CSR's own common name."""

    subject: str
    sans: list[str]
    common_name: str

    @property
    def label(self) -> str:
        """``CSR for 'web'``, for messages."""
        return f"CSR for {self.common_name or self.subject!r}"


# --------------------------------------------------------------------------- provisioner key


def decrypt_provisioner_key(
    entry: dict[str, Any], encrypted: str, password: bytes
) -> ProvisionerKey:
    """Decrypt the encrypted key of provisioner ``entry`` (from ``GET /provisioners``).

    The key must match the entry's key id (its RFC 7638 thumbprint).
    """
    name = entry.get("name")
    try:
        private = json.loads(_jose.jwe_decrypt_pbes2(encrypted, password))
    except _jose.JoseError as exc:
        if "wrong password" in str(exc):
            raise TokenError(
                f"wrong password for provisioner {name!r}: its encrypted key cannot be"
                " decrypted with the given provisioner password",
                kind="wrong_password",
            ) from None
        raise TokenError(f"provisioner {name!r}: {exc}") from None
    except ValueError:
        raise TokenError(f"provisioner {name!r}: the decrypted key is not JSON") from None
    kid = entry.get("key", {}).get("kid") or ""
    try:
        thumbprint = _jose.jwk_thumbprint(private)
        _jose.jwk_to_private_key(private)
    except _jose.JoseError as exc:
        raise TokenError(f"provisioner {name!r}: {exc}") from None
    if kid and thumbprint != kid:
        raise TokenError(f"provisioner {name!r}: the decrypted key does not match its key id {kid}")
    private.setdefault("kid", kid or thumbprint)
    return ProvisionerKey(
        name=str(name), kid=kid or thumbprint, jwk=private, claims=dict(entry.get("claims") or {})
    )


# --------------------------------------------------------------------------- times


def parse_rfc3339(value: str) -> datetime.datetime:
    """An RFC 3339 time with a zone, as an aware UTC datetime; raises ValueError."""
    text = value.strip()
    if not re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}", text):
        raise ValueError(f"not an RFC 3339 time: {value!r}")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"RFC 3339 time without a time zone: {value!r}")
    return parsed.astimezone(datetime.timezone.utc)


def rfc3339(value: datetime.datetime) -> str:
    """``2030-01-01T00:00:00Z``."""
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_time_value(value: str | None, option: str) -> str | None:
    """Validate ``value`` as an RFC 3339 time or a Go duration; return it unchanged."""
    if value is None or value == "":
        return None
    try:
        parse_rfc3339(value)
    except ValueError:
        pass
    else:
        return value
    try:
        _crypto.parse_duration(value, go=True)
    except _crypto.CryptoError:
        pass
    else:
        return value
    raise TokenError(
        f"{option} must be an RFC 3339 time (2030-01-01T00:00:00Z) or a duration (24h, 90m),"
        f" got {value!r}"
    )


def _resolve(value: str | None, base: datetime.datetime) -> datetime.datetime | None:
    if not value:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        return base + _crypto.parse_duration(value, go=True)


def _human(delta: datetime.timedelta) -> str:
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return (
        "".join(
            f"{value}{unit}"
            for value, unit in ((hours, "h"), (minutes, "m"), (seconds, "s"))
            if value
        )
        or "0s"
    )


# --------------------------------------------------------------------------- authorisation


def authorise(request: SignRequest, key: ProvisionerKey | None = None) -> Authorisation:
    """Check a request locally and work out the token's subject and SANs.

    The SANs come from :func:`_crypto.certificate_sans`, normalised (DNS names
    lower-case, IPv6 canonical). A CSR that asks for a SAN or a common name the
    request does not authorise is refused here (``san_not_allowed``); the CA
    would refuse it too, since the token carries only the authorised names.

    Raises :class:`TokenError` for a bad CSR, bad times, or (when ``key`` has
    duration claims) a validity outside the provisioner's limits.
    """
    try:
        csr = x509.load_pem_x509_csr(request.csr.encode())
    except (ValueError, AttributeError) as exc:
        raise TokenError("not a PEM certificate signing request") from exc
    # The CSR comes from a managed host: whatever in it cannot be read fails this request
    # only, never the batch (cryptography parses lazily, and raises more than ValueError).
    try:
        if not csr.is_signature_valid:
            raise TokenError("the CSR's signature does not verify")
        cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        common_name = str(cns[0].value) if cns else ""
        csr_sans = _crypto.sans_of(csr.extensions)
    except TokenError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse error of untrusted input
        raise TokenError(f"the CSR cannot be read: {exc.__class__.__name__}: {exc}") from None
    subject = request.subject or common_name
    try:
        if request.sans is None:
            requested: tuple[_crypto.San, ...] = csr_sans
        else:
            requested = tuple(_crypto.read_token_san(value) for value in request.sans)
        authorised = _crypto.certificate_sans(subject, requested)
        sans = _crypto.token_strings(authorised)
    except _crypto.CryptoError as exc:
        raise TokenError(str(exc)) from None
    subject = subject or (sans[0] if sans else "")
    if not subject:
        raise TokenError("the CSR has neither a common name nor SANs")
    if common_name and common_name != subject:
        raise TokenError(
            f"the CSR's common name {common_name!r} is not the authorised {subject!r}",
            kind="san_not_allowed",
        )
    extra = [str(san) for san in csr_sans if san not in authorised]
    if extra:
        raise TokenError(
            f"the CSR for {subject!r} asks for SANs that are not authorised:"
            f" {', '.join(extra)} (authorised: {', '.join(map(str, authorised))})",
            kind="san_not_allowed",
        )
    check_time_value(request.not_before, "not_before")
    check_time_value(request.not_after, "not_after")
    check_time_value(request.duration, "duration")
    if request.duration and request.not_after:
        raise TokenError("give either not_after or duration, not both")
    if request.duration:
        try:
            _crypto.parse_duration(request.duration, go=True)
        except _crypto.CryptoError:
            raise TokenError(
                f"duration must be a duration such as 24h or 90m, got {request.duration!r}"
            ) from None
    if key is not None:
        _check_limits(request, key)
    return Authorisation(subject=subject, sans=sans, common_name=common_name)


def _check_limits(request: SignRequest, key: ProvisionerKey) -> None:
    not_after = request.effective_not_after()
    if not not_after:
        return
    now = datetime.datetime.now(datetime.timezone.utc)
    not_before_time = _resolve(request.not_before, now) or now
    not_after_time = _resolve(not_after, not_before_time)
    if not_after_time is None:  # cannot happen; narrows the type
        raise AssertionError("not_after_time is unset")
    if not_after_time <= now:
        raise TokenError(f"not_after {not_after!r} is in the past", kind="duration")
    if not_after_time <= not_before_time:
        raise TokenError("not_after must be later than not_before", kind="duration")
    lifetime = not_after_time - not_before_time
    limits = {}
    for claim in ("minTLSCertDuration", "maxTLSCertDuration"):
        if key.claims.get(claim):
            try:
                limits[claim] = _crypto.parse_duration(key.claims[claim], go=True)
            except _crypto.CryptoError:
                continue
    low = limits.get("minTLSCertDuration")
    high = limits.get("maxTLSCertDuration")
    if (low is not None and lifetime < low) or (
        high is not None and lifetime > high + _BACKDATE_TOLERANCE
    ):
        raise TokenError(
            f"requested duration {_human(lifetime)} is outside the limits of provisioner"
            f" {key.name!r} (min {key.claims.get('minTLSCertDuration', 'CA default')},"
            f" max {key.claims.get('maxTLSCertDuration', 'CA default')})",
            kind="duration",
        )


# --------------------------------------------------------------------------- the token


def mint_token(
    key: ProvisionerKey,
    *,
    audience: str,
    subject: str,
    root_fingerprint: str,
    sans: list[str] | None = None,
    now: float | None = None,
) -> str:
    """A one-time token for ``subject``, signed with the provisioner key.

    Claims: iss (provisioner name), aud (``https://<ca>/1.0/sign``), sub, sans
    (default ``[sub]`` for a sign audience; omitted for others when not given),
    iat = nbf = now, exp = now + 5 minutes, jti (64 hex), sha (root fingerprint).
    """
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": key.name,
        "aud": audience,
        "sub": subject,
        "iat": issued,
        "nbf": issued,
        "exp": issued + TOKEN_LIFETIME,
        "jti": secrets.token_hex(32),
        "sha": root_fingerprint,
    }
    if audience.endswith("/sign"):
        claims["sans"] = list(sans) if sans else [subject]
    elif sans:
        claims["sans"] = list(sans)
    return _jose.jws_sign_compact(claims, key.jwk, {"kid": key.kid, "typ": "JWT"})
