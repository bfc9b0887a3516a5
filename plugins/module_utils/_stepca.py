# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small client for the step-ca 0.19 HTTP API, for the controller.

* The CA's root is pinned: given as PEM, or as a SHA-256 fingerprint, in which
  case it is fetched once from ``/root/{fingerprint}`` without TLS verification
  and trusted only if its fingerprint matches. Every other call verifies TLS
  against that root alone.
* A JWK provisioner's key is decrypted once (:meth:`StepCAClient.provisioner_key`)
  and then mints one one-time token per request.
* :meth:`StepCAClient.sign_many` signs CSRs concurrently with a bounded pool;
  connection errors and 5xx answers are retried with bounded exponential backoff.

Only ``cryptography`` and the standard library are needed. No message or
exception text carries a password, a private key or a token.
"""

from __future__ import annotations

import datetime
import hmac
import http.client
import json
import re
import secrets
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    from ansible_collections.mtls.rollout.plugins.module_utils import _crypto, _jose
except ImportError as _exc:  # modules report it with missing_required_lib
    CRYPTOGRAPHY_IMPORT_ERROR: str | None = f"{type(_exc).__name__}: {_exc}"
else:
    CRYPTOGRAPHY_IMPORT_ERROR = None

DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 0.5
MAX_BACKOFF = 8.0
MAX_WORKERS = 32
TOKEN_LIFETIME = 300  # seconds, like step's default
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_GO_DURATION = re.compile(r"^(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
# step-ca's validity check allows max + backdate (one minute by default).
_BACKDATE_TOLERANCE = datetime.timedelta(minutes=1)


class StepCAError(Exception):
    """A step-ca call failed; the message is safe to show (no secrets).

    ``kind`` names the cause for callers and tests: ``unreachable``, ``tls``,
    ``fingerprint_mismatch``, ``wrong_password``, ``unknown_provisioner``,
    ``san_not_allowed``, ``duration``, ``unauthorized``, ``bad_request``,
    ``server_error`` or ``invalid``. ``status`` is the HTTP status when there was one.
    """

    def __init__(self, message: str, *, kind: str = "error", status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


# --------------------------------------------------------------------------- helpers


def fingerprint(cert: x509.Certificate) -> str:
    """Lower-case hex SHA-256 of the certificate's DER encoding (step's fingerprint)."""
    return cert.fingerprint(hashes.SHA256()).hex()


def normalize_fingerprint(value: str) -> str:
    """Accept ``AB:CD:...``, upper case, or a ``sha256:`` prefix; return 64 lower-case hex."""
    text = (value or "").strip().lower()
    if text.startswith("sha256:"):
        text = text[len("sha256:") :]
    text = text.replace(":", "").replace(" ", "")
    if not _HEX64.match(text):
        raise StepCAError(
            "the root fingerprint must be a SHA-256 hex string (64 hex digits)", kind="invalid"
        )
    return text


def load_root_pem(pem: str | bytes) -> x509.Certificate:
    """Load the first certificate of ``pem`` and check it is a self-signed CA certificate."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise StepCAError("the root is not a PEM certificate", kind="invalid") from exc
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = constraints.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise StepCAError(
            f"the root certificate {cert.subject.rfc4514_string()} is not a CA certificate",
            kind="invalid",
        )
    if cert.issuer != cert.subject:
        raise StepCAError(
            f"the root certificate {cert.subject.rfc4514_string()} is not self-signed",
            kind="invalid",
        )
    return cert


def cert_pem(cert: x509.Certificate) -> str:
    """PEM text of ``cert``."""
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def read_password_file(path: str) -> bytes:
    """Read a password file; trailing white space (the newline) is dropped, as step does."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise StepCAError(
            f"cannot read the password file {path}: {exc.strerror}", kind="invalid"
        ) from exc
    data = data.rstrip()
    if not data:
        raise StepCAError(f"the password file {path} is empty", kind="invalid")
    return data


def parse_go_duration(value: str) -> datetime.timedelta:
    """Parse a Go ``time.Duration`` string such as ``24h``, ``1h30m`` or ``90s``."""
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise ValueError("empty duration")
    sign = -1.0 if text.startswith("-") else 1.0
    rest = text[1:] if text[0] in "+-" else text
    if rest == "0":
        return datetime.timedelta(0)
    total = 0.0
    while rest:
        match = _GO_DURATION.match(rest)
        if not match:
            raise ValueError(f"invalid duration {value!r}")
        part = match.group(0)
        unit = re.search(r"(ns|us|µs|μs|ms|s|m|h)$", part)
        assert unit is not None
        total += float(part[: unit.start()]) * _GO_UNITS[unit.group(1)]
        rest = rest[len(part) :]
    return datetime.timedelta(seconds=sign * total)


def _parse_rfc3339(value: str) -> datetime.datetime:
    text = value.strip()
    if not re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}", text):
        raise ValueError(f"not an RFC 3339 time: {value!r}")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"RFC 3339 time without a time zone: {value!r}")
    return parsed.astimezone(datetime.timezone.utc)


def check_time_value(value: str | None, option: str) -> str | None:
    """Validate ``value`` as an RFC 3339 time or a Go duration; return it unchanged."""
    if value is None or value == "":
        return None
    for parser in (_parse_rfc3339, parse_go_duration):
        try:
            parser(value)
        except ValueError:
            continue
        return value
    raise StepCAError(
        f"{option} must be an RFC 3339 time (2030-01-01T00:00:00Z) or a duration (24h, 90m),"
        f" got {value!r}",
        kind="invalid",
    )


def _resolve(value: str | None, base: datetime.datetime) -> datetime.datetime | None:
    if not value:
        return None
    try:
        return _parse_rfc3339(value)
    except ValueError:
        return base + parse_go_duration(value)


def _rfc3339(value: datetime.datetime) -> str:
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def serial_hex(serial: int) -> str:
    """Upper-case hex with an even digit count: what NGINX's ``$ssl_client_serial`` shows."""
    text = f"{serial:X}"
    return text if len(text) % 2 == 0 else "0" + text


# --------------------------------------------------------------------------- data


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


@dataclass
class SignedCertificate:
    """A certificate step-ca issued, with the chain it sent back."""

    certificate: str
    chain: list[str]
    serial: int
    not_before: str
    not_after: str
    subject: str
    sans: list[str]

    @property
    def fullchain(self) -> str:
        """The leaf followed by the intermediate(s), as servers want it."""
        return "".join(_ensure_newline(pem) for pem in [self.certificate, *self.chain])

    def as_dict(self) -> dict[str, Any]:
        """The module's per-certificate result."""
        return {
            "certificate": self.certificate,
            "chain": "".join(_ensure_newline(pem) for pem in self.chain),
            "fullchain": self.fullchain,
            "serial": str(self.serial),
            "serial_hex": serial_hex(self.serial),
            "not_before": self.not_before,
            "not_after": self.not_after,
            "subject": self.subject,
            "subject_alt_names": self.sans,
        }


@dataclass
class SignOutcome:
    """What became of one request of a batch: a certificate, or the reason there is none."""

    certificate: SignedCertificate | None = None
    error: StepCAError | None = None

    @property
    def ok(self) -> bool:
        return self.certificate is not None

    def as_dict(self) -> dict[str, Any]:
        """The per-item result: ``ok`` and the certificate, or ``msg`` and ``error_kind``."""
        if self.certificate is not None:
            return {"ok": True, **self.certificate.as_dict()}
        error = self.error or StepCAError("not signed", kind="error")
        return {"ok": False, "msg": str(error), "error_kind": error.kind}


@dataclass
class ProvisionerKey:
    """A decrypted JWK provisioner key; never printed (``repr`` hides the JWK)."""

    name: str
    kid: str
    jwk: dict[str, Any] = field(repr=False)
    claims: dict[str, Any] = field(default_factory=dict)


def _ensure_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


# --------------------------------------------------------------------------- client


class StepCAClient:
    """Talks to one step-ca over TLS verified against a pinned root.

    Give ``root_pem`` (the root certificate) or ``root_fingerprint`` (its SHA-256),
    or both; with both they must agree. With only the fingerprint the root is
    fetched from the CA on first use (see :meth:`bootstrap_root`).
    """

    def __init__(
        self,
        ca_url: str,
        *,
        root_pem: str | bytes | None = None,
        root_fingerprint: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
    ) -> None:
        parsed = urllib.parse.urlsplit((ca_url or "").strip())
        if parsed.scheme != "https" or not parsed.hostname:
            raise StepCAError(
                f"ca_url must be an https:// URL with a host name, got {ca_url!r}", kind="invalid"
            )
        if parsed.query or parsed.fragment:
            raise StepCAError("ca_url must not have a query or fragment", kind="invalid")
        self.base_url = f"https://{parsed.netloc}{parsed.path.rstrip('/')}"
        # step-ca's token audiences are https://<dnsName>[:port]/1.0/sign (port ignored).
        self._audience_base = f"https://{parsed.netloc}"
        if timeout <= 0:
            raise StepCAError("timeout must be positive", kind="invalid")
        if retries < 0:
            raise StepCAError("retries must not be negative", kind="invalid")
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = max(0.0, float(backoff))
        self.max_backoff = max(self.backoff, float(max_backoff))
        self._expected_fp = normalize_fingerprint(root_fingerprint) if root_fingerprint else None
        self._root: x509.Certificate | None = None
        self._context: ssl.SSLContext | None = None
        if root_pem is None and self._expected_fp is None:
            raise StepCAError("give the CA root certificate or its fingerprint", kind="invalid")
        if root_pem is not None:
            root = load_root_pem(root_pem)
            actual = fingerprint(root)
            if self._expected_fp is not None and not hmac.compare_digest(actual, self._expected_fp):
                raise StepCAError(
                    f"root fingerprint mismatch: the given root certificate has {actual},"
                    f" but {self._expected_fp} is pinned",
                    kind="fingerprint_mismatch",
                )
            self._set_root(root)

    # ---- root and TLS

    def _set_root(self, root: x509.Certificate) -> None:
        context = ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH, cadata=cert_pem(root))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._root = root
        self._context = context

    @property
    def root(self) -> x509.Certificate:
        """The pinned root, fetched and verified first when only a fingerprint was given."""
        if self._root is None:
            self.bootstrap_root()
        assert self._root is not None
        return self._root

    @property
    def root_fingerprint(self) -> str:
        """Hex SHA-256 of the pinned root."""
        return fingerprint(self.root)

    @property
    def root_pem(self) -> str:
        """PEM of the pinned root."""
        return cert_pem(self.root)

    def bootstrap_root(self, *, retry: bool = True) -> x509.Certificate:
        """Fetch ``/root/{fingerprint}`` once, unverified, and trust it only if it matches.

        TLS verification is off for this single request only: the answer is
        authenticated by comparing its SHA-256 with the pinned fingerprint, and
        a mismatch fails closed.
        """
        if self._root is not None:
            return self._root
        assert self._expected_fp is not None
        unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE  # bootstrap only; checked by fingerprint below
        try:
            answer = self._request(
                "GET", f"/root/{self._expected_fp}", context=unverified, retry=retry
            )
        except StepCAError as exc:
            if exc.status != 404:
                raise
            raise StepCAError(
                f"root fingerprint mismatch: the CA at {self.base_url} has no root with"
                f" fingerprint {self._expected_fp}; check the pinned fingerprint and ca_url",
                kind="fingerprint_mismatch",
                status=404,
            ) from None
        pem = answer.get("ca") if isinstance(answer, dict) else None
        if not isinstance(pem, str):
            raise StepCAError(
                f"the CA at {self.base_url} sent no root certificate for {self._expected_fp}",
                kind="fingerprint_mismatch",
            )
        root = load_root_pem(pem)
        actual = fingerprint(root)
        if not hmac.compare_digest(actual, self._expected_fp):
            raise StepCAError(
                f"root fingerprint mismatch: the CA at {self.base_url} returned a root with"
                f" fingerprint {actual}, but {self._expected_fp} is pinned; refusing to trust it",
                kind="fingerprint_mismatch",
            )
        self._set_root(root)
        return root

    # ---- HTTP

    def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        context: ssl.SSLContext | None = None,
        retry: bool = True,
        body_factory: Any = None,
    ) -> Any:
        """One JSON request with retries for connection errors and 5xx answers.

        ``body_factory`` (a callable returning the body) is used instead of
        ``body`` when each attempt needs a fresh body, such as a new token.
        """
        if context is None:
            self.root  # noqa: B018 - make sure the root is pinned before any verified call
            context = self._context
        url = self.base_url + path
        attempts = self.retries + 1 if retry else 1
        last_reason = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(min(self.max_backoff, self.backoff * (2 ** (attempt - 1))))
            payload = body_factory() if body_factory is not None else body
            data = None if payload is None else json.dumps(payload).encode()
            request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
            request.add_header("Accept", "application/json")
            if data is not None:
                request.add_header("Content-Type", "application/json")
            opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
            try:
                with opener.open(request, timeout=self.timeout) as response:
                    raw = response.read()
            except urllib.error.HTTPError as exc:
                status = exc.code
                message = _error_message(exc)
                if status >= 500 and attempt + 1 < attempts:
                    last_reason = f"HTTP {status}: {message}"
                    continue
                raise _http_error(status, message, method, path, self.base_url) from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                if isinstance(reason, ssl.SSLCertVerificationError):
                    raise StepCAError(
                        f"TLS verification of {self.base_url} against the pinned root"
                        f" ({fingerprint(self._root) if self._root else '?'}) failed:"
                        f" {reason.verify_message or reason}; is this the right CA and root?",
                        kind="tls",
                    ) from None
                last_reason = _reason_text(reason)
                continue
            try:
                return json.loads(raw) if raw else {}
            except ValueError:
                raise StepCAError(
                    f"{method} {path}: the CA at {self.base_url} did not answer with JSON",
                    kind="server_error",
                ) from None
        raise StepCAError(
            f"the CA at {self.base_url} is unreachable after {attempts} attempt(s): {last_reason}",
            kind="unreachable",
        )

    # ---- read-only endpoints

    def health(self, *, retry: bool = True) -> dict[str, Any]:
        """``GET /health``."""
        return self._request("GET", "/health", retry=retry)

    def wait_healthy(self, wait_timeout: float, interval: float = 1.0) -> dict[str, Any]:
        """Poll ``/health`` until it says ok, for at most ``wait_timeout`` seconds."""
        deadline = time.monotonic() + max(0.0, wait_timeout)
        last = ""
        while True:
            try:
                if self._root is None:
                    self.bootstrap_root(retry=False)
                answer = self.health(retry=False)
                if answer.get("status") == "ok":
                    return answer
                last = f"status {answer.get('status')!r}"
            except StepCAError as exc:
                if exc.kind in ("fingerprint_mismatch", "tls", "invalid"):
                    raise
                last = str(exc)
            if time.monotonic() + interval > deadline:
                raise StepCAError(
                    f"the CA at {self.base_url} did not become healthy within {wait_timeout:g}s:"
                    f" {last}",
                    kind="unreachable",
                )
            time.sleep(interval)

    def version(self) -> dict[str, Any]:
        """``GET /version``."""
        return self._request("GET", "/version")

    def roots(self) -> list[x509.Certificate]:
        """``GET /roots``; every root the CA serves."""
        answer = self._request("GET", "/roots")
        certs = []
        for pem in answer.get("crts") or []:
            certs.append(x509.load_pem_x509_certificate(pem.encode()))
        return certs

    def provisioners(self, page_size: int | None = None) -> list[dict[str, Any]]:
        """Every provisioner (``GET /provisioners``, following ``nextCursor``).

        ``page_size`` is sent as ``limit``; by default the CA picks (20 in 0.19).
        """
        found: list[dict[str, Any]] = []
        cursor = ""
        for _ in range(1000):  # bounded: a CA never has that many pages
            params = {}
            if cursor:
                params["cursor"] = cursor
            if page_size:
                params["limit"] = str(int(page_size))
            query = "?" + urllib.parse.urlencode(params) if params else ""
            answer = self._request("GET", f"/provisioners{query}")
            found += answer.get("provisioners") or []
            next_cursor = answer.get("nextCursor") or ""
            if not next_cursor or next_cursor == cursor:
                break
            cursor = next_cursor
        return found

    def provisioner(self, name: str) -> dict[str, Any]:
        """The JWK provisioner called ``name``; lists the known names when it is unknown."""
        every = self.provisioners()
        for entry in every:
            if entry.get("name") == name and entry.get("type") == "JWK":
                return entry
        names = ", ".join(sorted(f"{p.get('name')} ({p.get('type')})" for p in every)) or "none"
        other = [p for p in every if p.get("name") == name]
        if other:
            raise StepCAError(
                f"provisioner {name!r} is of type {other[0].get('type')}, not JWK;"
                f" known provisioners: {names}",
                kind="unknown_provisioner",
            )
        raise StepCAError(
            f"unknown provisioner {name!r} at {self.base_url}; known provisioners: {names}",
            kind="unknown_provisioner",
        )

    def encrypted_key(self, entry: dict[str, Any]) -> str:
        """The provisioner's ``encryptedKey``, from its entry or from the key endpoint."""
        token = entry.get("encryptedKey")
        if token:
            return token
        kid = entry.get("key", {}).get("kid")
        if not kid:
            raise StepCAError(f"provisioner {entry.get('name')!r} has no key id", kind="invalid")
        answer = self._request("GET", f"/provisioners/{urllib.parse.quote(kid)}/encrypted-key")
        token = answer.get("key")
        if not token:
            raise StepCAError(
                f"provisioner {entry.get('name')!r} has no encrypted key on the CA",
                kind="invalid",
            )
        return token

    def provisioner_key(self, name: str, password: bytes) -> ProvisionerKey:
        """Look up provisioner ``name`` and decrypt its key with ``password`` (once)."""
        entry = self.provisioner(name)
        token = self.encrypted_key(entry)
        try:
            private = json.loads(_jose.jwe_decrypt_pbes2(token, password))
        except _jose.JoseError as exc:
            if "wrong password" in str(exc):
                raise StepCAError(
                    f"wrong password for provisioner {name!r}: its encrypted key cannot be"
                    " decrypted with the given provisioner password",
                    kind="wrong_password",
                ) from None
            raise StepCAError(f"provisioner {name!r}: {exc}", kind="invalid") from None
        except ValueError:
            raise StepCAError(
                f"provisioner {name!r}: the decrypted key is not JSON", kind="invalid"
            ) from None
        kid = entry.get("key", {}).get("kid") or ""
        try:
            thumbprint = _jose.jwk_thumbprint(private)
            _jose.jwk_to_private_key(private)
        except _jose.JoseError as exc:
            raise StepCAError(f"provisioner {name!r}: {exc}", kind="invalid") from None
        if kid and thumbprint != kid:
            raise StepCAError(
                f"provisioner {name!r}: the decrypted key does not match its key id {kid}",
                kind="invalid",
            )
        private.setdefault("kid", kid or thumbprint)
        return ProvisionerKey(
            name=name, kid=kid or thumbprint, jwk=private, claims=dict(entry.get("claims") or {})
        )

    # ---- tokens

    def mint_token(
        self,
        key: ProvisionerKey,
        subject: str,
        *,
        audience_path: str = "/1.0/sign",
        sans: list[str] | None = None,
        now: float | None = None,
    ) -> str:
        """A one-time token for ``subject``, signed with the provisioner key.

        Claims: iss (provisioner name), aud (``https://<ca>/1.0/sign``), sub,
        sans (default ``[sub]``; omitted for non-sign audiences when not given),
        iat = nbf = now, exp = now + 5 minutes, jti (64 hex), sha (root fingerprint).
        """
        issued = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "iss": key.name,
            "aud": self._audience_base + audience_path,
            "sub": subject,
            "iat": issued,
            "nbf": issued,
            "exp": issued + TOKEN_LIFETIME,
            "jti": secrets.token_hex(32),
            "sha": self.root_fingerprint,
        }
        if audience_path.endswith("/sign"):
            claims["sans"] = list(sans) if sans else [subject]
        elif sans:
            claims["sans"] = list(sans)
        return _jose.jws_sign_compact(claims, key.jwk, {"kid": key.kid, "typ": "JWT"})

    # ---- signing

    def prepare(self, request: SignRequest, key: ProvisionerKey | None = None) -> dict[str, Any]:
        """Check a request locally and work out the token's subject and SANs.

        The SANs come from :func:`_crypto.certificate_sans`, normalised (DNS names
        lower-case, IPv6 canonical). A CSR that asks for a SAN or a common name the
        request does not authorise is refused here (``san_not_allowed``); the CA
        would refuse it too, since the token carries only the authorised names.

        Raises :class:`StepCAError` for a bad CSR, bad times, or (when ``key`` has
        duration claims) a validity outside the provisioner's limits.
        """
        try:
            csr = x509.load_pem_x509_csr(request.csr.encode())
        except (ValueError, AttributeError) as exc:
            raise StepCAError("not a PEM certificate signing request", kind="invalid") from exc
        if not csr.is_signature_valid:
            raise StepCAError("the CSR's signature does not verify", kind="invalid")
        cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        common_name = str(cns[0].value) if cns else ""
        csr_sans = _crypto.sans_of(csr.extensions)
        subject = request.subject or common_name
        try:
            if request.sans is None:
                requested: tuple[_crypto.San, ...] = csr_sans
            else:
                requested = tuple(_crypto.read_token_san(value) for value in request.sans)
            authorised = _crypto.certificate_sans(subject, requested)
            sans = _crypto.token_strings(authorised)
        except _crypto.CryptoError as exc:
            raise StepCAError(str(exc), kind="invalid") from None
        subject = subject or (sans[0] if sans else "")
        if not subject:
            raise StepCAError("the CSR has neither a common name nor SANs", kind="invalid")
        if common_name and common_name != subject:
            raise StepCAError(
                f"the CSR's common name {common_name!r} is not the authorised {subject!r}",
                kind="san_not_allowed",
            )
        extra = [str(san) for san in csr_sans if san not in authorised]
        if extra:
            raise StepCAError(
                f"the CSR for {subject!r} asks for SANs that are not authorised:"
                f" {', '.join(extra)} (authorised: {', '.join(map(str, authorised))})",
                kind="san_not_allowed",
            )
        check_time_value(request.not_before, "not_before")
        check_time_value(request.not_after, "not_after")
        check_time_value(request.duration, "duration")
        if request.duration and request.not_after:
            raise StepCAError("give either not_after or duration, not both", kind="invalid")
        if request.duration:
            try:
                parse_go_duration(request.duration)
            except ValueError:
                raise StepCAError(
                    f"duration must be a duration such as 24h or 90m, got {request.duration!r}",
                    kind="invalid",
                ) from None
        if key is not None:
            self._check_limits(request, key)
        return {"csr": csr, "subject": subject, "sans": sans, "common_name": common_name}

    @staticmethod
    def _check_limits(request: SignRequest, key: ProvisionerKey) -> None:
        not_after = request.effective_not_after()
        if not not_after:
            return
        now = datetime.datetime.now(datetime.timezone.utc)
        not_before_time = _resolve(request.not_before, now) or now
        not_after_time = _resolve(not_after, not_before_time)
        assert not_after_time is not None
        if not_after_time <= now:
            raise StepCAError(f"not_after {not_after!r} is in the past", kind="duration")
        if not_after_time <= not_before_time:
            raise StepCAError("not_after must be later than not_before", kind="duration")
        lifetime = not_after_time - not_before_time
        limits = {}
        for claim in ("minTLSCertDuration", "maxTLSCertDuration"):
            if key.claims.get(claim):
                try:
                    limits[claim] = parse_go_duration(key.claims[claim])
                except ValueError:
                    continue
        low = limits.get("minTLSCertDuration")
        high = limits.get("maxTLSCertDuration")
        if (low is not None and lifetime < low) or (
            high is not None and lifetime > high + _BACKDATE_TOLERANCE
        ):
            raise StepCAError(
                f"requested duration {_human(lifetime)} is outside the limits of provisioner"
                f" {key.name!r} (min {key.claims.get('minTLSCertDuration', 'CA default')},"
                f" max {key.claims.get('maxTLSCertDuration', 'CA default')})",
                kind="duration",
            )

    def sign(
        self, key: ProvisionerKey, request: SignRequest, *, check_limits: bool = True
    ) -> SignedCertificate:
        """Sign one CSR: mint a fresh token per attempt and POST ``/1.0/sign``."""
        info = self.prepare(request, key if check_limits else None)

        def body() -> dict[str, Any]:
            payload: dict[str, Any] = {
                "csr": request.csr,
                "ott": self.mint_token(key, info["subject"], sans=info["sans"]),
            }
            if request.not_before:
                payload["notBefore"] = request.not_before
            if request.effective_not_after():
                payload["notAfter"] = request.effective_not_after()
            return payload

        label = f"CSR for {info['common_name'] or info['subject']!r}"
        try:
            answer = self._request("POST", "/1.0/sign", body_factory=body)
        except StepCAError as exc:
            raise StepCAError(f"{label}: {exc}", kind=exc.kind, status=exc.status) from None
        return _signed_from_answer(answer, label)

    def sign_many(
        self,
        key: ProvisionerKey,
        requests: list[SignRequest],
        *,
        workers: int = 4,
        check_limits: bool = True,
    ) -> list[SignOutcome]:
        """Sign ``requests`` concurrently (at most ``workers`` at once): one outcome each, in order.

        A request that fails the local checks or that the CA refuses gets an outcome
        with its error; the others are signed all the same. Errors that concern the
        whole batch (root, provisioner, password) surface before this, when the key
        is decrypted with :meth:`provisioner_key`.
        """
        outcomes: list[SignOutcome] = [SignOutcome() for _ in requests]
        to_sign: list[int] = []
        for index, request in enumerate(requests):
            try:
                self.prepare(request, key if check_limits else None)
            except StepCAError as exc:
                outcomes[index].error = exc
            else:
                to_sign.append(index)
        if not to_sign:
            return outcomes
        self.root  # noqa: B018 - bootstrap once, before the threads start
        size = max(1, min(int(workers), MAX_WORKERS, len(to_sign)))
        with ThreadPoolExecutor(max_workers=size) as pool:
            futures = {
                index: pool.submit(self.sign, key, requests[index], check_limits=check_limits)
                for index in to_sign
            }
            for index, future in futures.items():
                try:
                    outcomes[index].certificate = future.result()
                except StepCAError as exc:
                    outcomes[index].error = exc
        return outcomes

    # ---- revocation

    def revoke(
        self,
        key: ProvisionerKey,
        serial: int | str,
        reason: str = "",
        reason_code: int = 0,
    ) -> dict[str, Any]:
        """Passively revoke ``serial`` (decimal, or hex with a ``0x`` prefix or colons)."""
        number = _serial_number(serial)
        subject = str(number)

        def body() -> dict[str, Any]:
            return {
                "serial": subject,
                "ott": self.mint_token(key, subject, audience_path="/1.0/revoke"),
                "reasonCode": int(reason_code),
                "reason": reason,
                "passive": True,
            }

        try:
            return self._request("POST", "/1.0/revoke", body_factory=body)
        except StepCAError as exc:
            raise StepCAError(
                f"revoking serial {subject}: {exc}", kind=exc.kind, status=exc.status
            ) from None


# --------------------------------------------------------------------------- internals


def _serial_number(serial: int | str) -> int:
    if isinstance(serial, int):
        return serial
    text = str(serial).strip()
    try:
        if text.lower().startswith("0x"):
            return int(text[2:], 16)
        if ":" in text:
            return int(text.replace(":", ""), 16)
        return int(text, 10)
    except ValueError:
        raise StepCAError(f"not a certificate serial number: {serial!r}", kind="invalid") from None


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


def _reason_text(reason: Any) -> str:
    if isinstance(reason, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return f"name resolution failed ({reason.strerror})"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or reason.__class__.__name__


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        raw = exc.read()
    except OSError:
        raw = b""
    try:
        answer = json.loads(raw)
        message = answer.get("message") if isinstance(answer, dict) else None
    except ValueError:
        message = None
    if not message:
        message = raw.decode("utf-8", "replace").strip()[:300] or exc.reason or "no details"
    return str(message)


_SAN_HINTS = (
    "dns names",
    "ip addresses",
    "email addresses",
    "uris",
    "common name",
    "sans",
)


def _http_error(status: int, message: str, method: str, path: str, base: str) -> StepCAError:
    lowered = message.lower()
    if "duration" in lowered or "notafter" in lowered or "notbefore" in lowered:
        return StepCAError(
            f"the CA refused the requested validity ({status}): {message}",
            kind="duration",
            status=status,
        )
    if status == 403 and any(hint in lowered for hint in _SAN_HINTS):
        return StepCAError(
            f"SAN or common name not allowed by the CA ({status}): {message}",
            kind="san_not_allowed",
            status=status,
        )
    if status == 401:
        return StepCAError(
            f"the CA rejected the one-time token ({status}): {message}; check the provisioner,"
            " the controller's clock, and that ca_url names the CA as in its dnsNames",
            kind="unauthorized",
            status=status,
        )
    if status == 404:
        return StepCAError(
            f"{method} {path}: not found at {base} ({status}): {message}",
            kind="not_found",
            status=status,
        )
    if status >= 500:
        return StepCAError(
            f"{method} {path}: the CA failed ({status}): {message}",
            kind="server_error",
            status=status,
        )
    return StepCAError(
        f"{method} {path}: the CA refused the request ({status}): {message}",
        kind="bad_request" if status == 400 else "refused",
        status=status,
    )


def _signed_from_answer(answer: Any, label: str) -> SignedCertificate:
    if not isinstance(answer, dict) or not answer.get("crt"):
        raise StepCAError(f"{label}: the CA's answer holds no certificate", kind="server_error")
    leaf_pem = _ensure_newline(answer["crt"])
    chain = answer.get("certChain") or [answer["crt"], answer.get("ca")]
    chain_pems = [_ensure_newline(pem) for pem in chain if pem]
    # certChain starts with the leaf; the "chain" we return is what follows it.
    if chain_pems and chain_pems[0].strip() == leaf_pem.strip():
        chain_pems = chain_pems[1:]
    try:
        leaf = x509.load_pem_x509_certificate(leaf_pem.encode())
    except ValueError:
        raise StepCAError(
            f"{label}: the CA sent an unreadable certificate", kind="server_error"
        ) from None
    return SignedCertificate(
        certificate=leaf_pem,
        chain=chain_pems,
        serial=leaf.serial_number,
        not_before=_rfc3339(_crypto.not_valid_before(leaf)),
        not_after=_rfc3339(_crypto.not_valid_after(leaf)),
        subject=leaf.subject.rfc4514_string(),
        sans=[san.value for san in _crypto.sans_of(leaf.extensions)],
    )


# --------------------------------------------------------------------------- module backends

MODULE_CONNECTION_SPEC: dict[str, Any] = {
    "ca_url": {"type": "str", "required": True},
    "root": {"type": "path"},
    "root_fingerprint": {"type": "str"},
    "timeout": {"type": "float", "default": DEFAULT_TIMEOUT},
    "retries": {"type": "int", "default": DEFAULT_RETRIES},
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

INFO_ARGUMENT_SPEC: dict[str, Any] = {
    **MODULE_CONNECTION_SPEC,
    "wait_timeout": {"type": "float", "default": 0.0},
    "wait_interval": {"type": "float", "default": 1.0},
    "provisioners": {"type": "bool", "default": True},
}
MAX_WAIT_TIMEOUT = 3600.0


def client_from_params(params: dict[str, Any]) -> StepCAClient:
    """A :class:`StepCAClient` from the shared connection options."""
    root_pem = None
    if params.get("root"):
        try:
            with open(params["root"], "rb") as handle:
                root_pem = handle.read()
        except OSError as exc:
            raise StepCAError(
                f"cannot read the root certificate {params['root']}: {exc.strerror}",
                kind="invalid",
            ) from exc
    if params.get("retries", 0) > 10:
        raise StepCAError("retries must be at most 10", kind="invalid")
    return StepCAClient(
        params["ca_url"],
        root_pem=root_pem,
        root_fingerprint=params.get("root_fingerprint") or None,
        timeout=params.get("timeout") or DEFAULT_TIMEOUT,
        retries=params.get("retries", DEFAULT_RETRIES),
    )


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


def _sign_requests(params: dict[str, Any]) -> list[SignRequest | StepCAError]:
    """The requests of ``step_ca_sign``, or for each bad ``csrs`` item its error.

    Errors that concern every item (such as a bad module-level duration) are raised.
    """
    defaults = {
        "not_before": check_time_value(params.get("not_before"), "not_before"),
        "not_after": check_time_value(params.get("not_after"), "not_after"),
        "duration": check_time_value(params.get("duration"), "duration"),
    }
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
    items = list(params.get("csrs") or [])
    if not items:
        raise StepCAError("csrs is empty: nothing to sign", kind="invalid")
    requests: list[SignRequest | StepCAError] = []
    for index, item in enumerate(items):
        try:
            requests.append(_sign_request(item, defaults, f"csrs[{index}]"))
        except StepCAError as exc:
            requests.append(exc)
    return requests


def run_sign(params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    """The ``step_ca_sign`` module: returns its result, raises :class:`StepCAError`.

    With ``csr`` any failure raises. With ``csrs`` the result holds ``results``, one
    per item in order (a certificate, or the reason there is none), and
    ``failed_count``; only errors that concern the whole batch raise, and they are
    found before anything is signed: bad options, an unreachable CA, a root
    fingerprint mismatch, an unknown provisioner, a wrong password. ``changed`` is
    true when at least one certificate was issued (in check mode: would be).
    """
    workers = params.get("workers", 4)
    if not 1 <= workers <= MAX_WORKERS:
        raise StepCAError(f"workers must be between 1 and {MAX_WORKERS}", kind="invalid")
    single = params.get("csr") is not None
    requests = _sign_requests(params)
    client = client_from_params(params)
    password = _provisioner_password(params)
    outcomes = [
        SignOutcome(error=req) if isinstance(req, StepCAError) else None for req in requests
    ]
    valid = [(index, req) for index, req in enumerate(requests) if isinstance(req, SignRequest)]
    result: dict[str, Any] = {"provisioner": params["provisioner"]}
    if check_mode:
        for index, request in valid:
            try:
                client.prepare(request)
            except StepCAError as exc:
                outcomes[index] = SignOutcome(error=exc)
            else:
                outcomes[index] = SignOutcome()
    else:
        key = client.provisioner_key(params["provisioner"], password)
        signed = client.sign_many(key, [req for _, req in valid], workers=workers)
        for position, (index, _) in enumerate(valid):
            outcomes[index] = signed[position]
        result["root_fingerprint"] = client.root_fingerprint
    if single:
        outcome = outcomes[0]
        assert outcome is not None
        if outcome.error is not None:
            raise outcome.error
        result["changed"] = True
        if outcome.certificate is not None:
            result.update(outcome.certificate.as_dict())
        return result
    items = []
    for outcome in outcomes:
        assert outcome is not None
        if check_mode and outcome.error is None:
            items.append({"ok": True})
        else:
            items.append(outcome.as_dict())
    result["results"] = items
    result["failed_count"] = sum(1 for item in items if not item["ok"])
    result["changed"] = result["failed_count"] < len(items)
    return result


def _cert_facts(cert: x509.Certificate) -> dict[str, Any]:
    return {
        "subject": cert.subject.rfc4514_string(),
        "fingerprint": fingerprint(cert),
        "not_after": _rfc3339(_crypto.not_valid_after(cert)),
    }


def run_info(params: dict[str, Any]) -> dict[str, Any]:
    """The ``step_ca_info`` module: health, version, verified roots, provisioners."""
    wait_timeout = params.get("wait_timeout") or 0.0
    if not 0 <= wait_timeout <= MAX_WAIT_TIMEOUT:
        raise StepCAError(
            f"wait_timeout must be between 0 and {MAX_WAIT_TIMEOUT:g} seconds", kind="invalid"
        )
    client = client_from_params(params)
    if wait_timeout:
        health = client.wait_healthy(wait_timeout, max(0.1, params.get("wait_interval") or 1.0))
    else:
        health = client.health()
    version = client.version().get("version", "")
    roots = client.roots()
    pinned = client.root_fingerprint
    if pinned not in [fingerprint(root) for root in roots]:
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
        "roots": [dict(_cert_facts(root), pem=cert_pem(root)) for root in roots],
    }
    if params.get("provisioners", True):
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


# --------------------------------------------------------------------------- revocation backend

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
# RFC 5280 section 4.1.2.2: a serial number is a positive integer of at most 20 octets.
_MAX_SERIAL = 1 << (20 * 8)
_DECIMAL = re.compile(r"^[0-9]+$")
_HEX = re.compile(r"^[0-9a-f]+$")
_COLON_HEX = re.compile(r"^[0-9a-f]{1,2}(?::[0-9a-f]{1,2})+$")
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


def parse_serial(value: Any) -> int:
    """A certificate serial number from the forms people copy it in.

    * an integer, or a string of decimal digits: decimal (what step-ca and
      ``step certificate inspect`` print, and ``step_ca_sign``'s ``serial``);
    * hex with colons, any case (``5a:3f:...`` as ``openssl x509 -text`` prints it);
    * hex with a ``0x`` prefix;
    * plain hex with at least one letter a-f (NGINX's ``$ssl_client_serial``).

    A plain string of digits is always decimal; write hex made only of the digits
    0-9 with colons or a ``0x`` prefix. Raises :class:`StepCAError` (``invalid``).
    """
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip().lower()
        if text.startswith("0x") and _HEX.match(text[2:].replace(":", "")):
            number = int(text[2:].replace(":", ""), 16)
        elif _COLON_HEX.match(text):
            number = int(text.replace(":", ""), 16)
        elif _DECIMAL.match(text):
            number = int(text, 10)
        elif _HEX.match(text):
            number = int(text, 16)
        else:
            number = None
    else:
        number = None
    if number is None:
        raise StepCAError(
            f"serial must be a certificate serial number in decimal, or in hex with colons,"
            f" a 0x prefix or the letters a-f, got {value!r}",
            kind="invalid",
        )
    if not 0 < number < _MAX_SERIAL:
        raise StepCAError(
            f"serial must be a positive number of at most 20 octets (RFC 5280), got {number}",
            kind="invalid",
        )
    return number


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


def _revoke_target(params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The serial to revoke, and facts about the certificate when one was given."""
    has_serial = params.get("serial") not in (None, "")
    has_cert = bool(params.get("certificate"))
    if has_serial == has_cert:
        raise StepCAError("give exactly one of serial and certificate", kind="invalid")
    if has_serial:
        return parse_serial(params["serial"]), {}
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
        "not_after": _rfc3339(_crypto.not_valid_after(cert)),
    }
    return parse_serial(cert.serial_number), facts


def _provisioner_password(params: dict[str, Any]) -> bytes:
    """The provisioner password from the file or the option; never empty."""
    if params.get("provisioner_password_file"):
        return read_password_file(params["provisioner_password_file"])
    password = (params.get("provisioner_password") or "").encode()
    if not password:
        raise StepCAError("provisioner_password is empty", kind="invalid")
    return password


def is_already_revoked(exc: StepCAError, serial: int | None = None) -> bool:
    """Whether ``exc`` is step-ca 0.19's answer to revoking a revoked serial again.

    With ``serial``, the answer must also name that serial (in decimal).
    """
    if exc.status != 400 or _ALREADY_REVOKED not in str(exc):
        return False
    return serial is None or f"'{serial}' {_ALREADY_REVOKED}" in str(exc)


def run_revoke(params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    """The ``step_ca_revoke`` module: passive revocation, honest about ``changed``.

    step-ca 0.19 has no read-only way to ask whether a serial is revoked, so a
    revocation is attempted, and the CA's "already revoked" answer (HTTP 400)
    becomes ``changed=False``. Check mode validates everything locally, reads the
    password file, and contacts no CA; it predicts ``changed=True``.
    """
    serial, facts = _revoke_target(params)
    reason_code = parse_reason_code(params.get("reason_code"))
    reason = params.get("reason") or ""
    client = client_from_params(params)
    password = _provisioner_password(params)
    result: dict[str, Any] = {
        "changed": True,
        "provisioner": params["provisioner"],
        "serial": str(serial),
        "serial_hex": serial_hex(serial),
        "reason_code": reason_code,
        "reason": reason,
        "revoked": False,
        **facts,
    }
    if reason_code == REVOCATION_REASONS["certificateHold"]:
        result["warnings"] = [
            "reason_code 6 (certificateHold) is permanent with step-ca 0.19:"
            " a passive revocation cannot be lifted"
        ]
    if check_mode:
        return result
    key = client.provisioner_key(params["provisioner"], password)
    try:
        client.revoke(key, serial, reason=reason, reason_code=reason_code)
    except StepCAError as exc:
        if not is_already_revoked(exc, serial):
            raise
        result["changed"] = False
        result["already_revoked"] = True
    else:
        result["already_revoked"] = False
    result["revoked"] = True
    result["root_fingerprint"] = client.root_fingerprint
    return result


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
    if CRYPTOGRAPHY_IMPORT_ERROR:
        module.fail_json(
            msg=missing_required_lib("cryptography"), exception=CRYPTOGRAPHY_IMPORT_ERROR
        )
    try:
        result = action(module.params, module.check_mode)
    except StepCAError as exc:
        module.fail_json(msg=str(exc), error_kind=exc.kind)
    module.exit_json(**result)
