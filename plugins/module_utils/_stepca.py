# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTTP client for the step-ca 0.19 API, for the controller.

* The CA's root is pinned: given as PEM, or as a SHA-256 fingerprint, in which
  case it is fetched once from ``/root/{fingerprint}`` without TLS verification
  and trusted only if its fingerprint matches. Every other call verifies TLS
  against that root alone.
* :meth:`StepCAClient.provisioner_key` looks the JWK provisioner up and has its key
  decrypted once; what each token authorises and the token itself come from
  ``_stepca_token``.
* :meth:`StepCAClient.sign_many` signs CSRs concurrently with a bounded pool and
  returns one :class:`SignOutcome` per request; connection errors and 5xx answers
  are retried with bounded exponential backoff.

The modules' backends (options, results) are in ``_stepca_modules``. Only
``cryptography`` and the standard library are needed. No message or exception text
carries a password, a private key or a token.
"""

from __future__ import annotations

import hmac
import http.client
import json
import re
import select
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ansible_collections.mtls.rollout.plugins.module_utils import _stepca_token
from ansible_collections.mtls.rollout.plugins.module_utils._stepca_token import (
    ProvisionerKey,
    SignRequest,
)

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from ansible_collections.mtls.rollout.plugins.module_utils import _crypto
except ImportError as _exc:  # modules report it with missing_required_lib
    CRYPTOGRAPHY_IMPORT_ERROR: str | None = f"{type(_exc).__name__}: {_exc}"
else:
    CRYPTOGRAPHY_IMPORT_ERROR = None

DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 0.5
MAX_BACKOFF = 8.0
MAX_WORKERS = 32
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


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
    """:func:`_crypto.certificate_fingerprint` (lower-case hex SHA-256 of the DER)."""
    return _crypto.certificate_fingerprint(cert)


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


# --------------------------------------------------------------------------- data


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
            "serial_hex": _crypto.serial_hex(self.serial),
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
        self._host = parsed.hostname
        try:
            self._port = parsed.port or 443
        except ValueError:
            raise StepCAError(f"ca_url has an invalid port: {ca_url!r}", kind="invalid") from None
        self._path = parsed.path.rstrip("/")
        self._kept = threading.local()
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
        if self._root is None:  # cannot happen; narrows the type
            raise AssertionError("_root is unset")
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
        if self._expected_fp is None:  # cannot happen; narrows the type
            raise AssertionError("_expected_fp is unset")
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
        idempotent: bool = True,
    ) -> Any:
        """One JSON request with retries for connection errors and 5xx answers.

        ``body_factory`` (a callable returning the body) is used instead of
        ``body`` when each attempt needs a fresh body, such as a new token.
        A request that is not ``idempotent`` (a signature: the CA may have issued
        the certificate when its answer is lost) is retried only when it surely
        never reached the CA: the connection was refused or the name did not resolve.

        Requests verified against the pinned root reuse one kept-alive connection per
        thread (see :meth:`_connection`); the unverified bootstrap request never does.
        """
        keep = context is None
        if context is None:
            self.root  # noqa: B018 - make sure the root is pinned before any verified call
            context = self._context
        attempts = self.retries + 1 if retry else 1
        last_reason = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(min(self.max_backoff, self.backoff * (2 ** (attempt - 1))))
            payload = body_factory() if body_factory is not None else body
            data = None if payload is None else json.dumps(payload).encode()
            headers = {"Accept": "application/json"}
            if data is not None:
                headers["Content-Type"] = "application/json"
            conn = None
            try:
                conn = self._connection(context, keep)
                conn.request(method, self._path + path, body=data, headers=headers)
                response = conn.getresponse()
                raw = response.read()
            except (OSError, http.client.HTTPException) as reason:
                self._drop(keep)
                if conn is not None and not keep:
                    conn.close()
                if isinstance(reason, ssl.SSLCertVerificationError):
                    raise StepCAError(
                        f"TLS verification of {self.base_url} against the pinned root"
                        f" ({fingerprint(self._root) if self._root else '?'}) failed:"
                        f" {reason.verify_message or reason}; is this the right CA and root?",
                        kind="tls",
                    ) from None
                last_reason = _reason_text(reason)
                if not idempotent and not isinstance(
                    reason, (ConnectionRefusedError, socket.gaierror)
                ):
                    raise StepCAError(
                        f"{method} {path}: no answer from the CA at {self.base_url}"
                        f" ({last_reason}); not retried, since the CA may have acted on it",
                        kind="unreachable",
                    ) from None
                continue
            if not keep:
                conn.close()
            elif response.will_close:
                self._drop(keep)
            status = response.status
            if status >= 300:
                message = _error_message(raw, response.reason)
                if status >= 500 and idempotent and attempt + 1 < attempts:
                    last_reason = f"HTTP {status}: {message}"
                    continue
                raise _http_error(status, message, method, path, self.base_url) from None
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

    def _connection(self, context: ssl.SSLContext, keep: bool) -> http.client.HTTPSConnection:
        """A connection to the CA: this thread's kept-alive one when ``keep``, else a new one.

        A kept connection the CA has closed meanwhile (its socket reads as ready: an end of
        file) is replaced before anything is sent on it, so that a signature never goes out
        on a connection that is already gone.
        """
        kept = getattr(self._kept, "conn", None) if keep else None
        if kept is not None:
            sock = kept.sock
            if sock is not None and not _closed_by_peer(sock):
                return kept
            kept.close()
        conn = self._new_connection(context)
        if keep:
            self._kept.conn = conn
        return conn

    def _new_connection(self, context: ssl.SSLContext) -> http.client.HTTPSConnection:
        """A connection to the CA, through the proxy the environment names for it, if any."""
        host, port = self._host, self._port
        proxy = _https_proxy(host)
        if proxy is None:
            return http.client.HTTPSConnection(host, port, context=context, timeout=self.timeout)
        conn = http.client.HTTPSConnection(
            proxy[0], proxy[1], context=context, timeout=self.timeout
        )
        conn.set_tunnel(host, port)
        return conn

    def _drop(self, keep: bool) -> None:
        """Forget this thread's kept connection (after an error, or when the CA closes it)."""
        if not keep:
            return
        conn = getattr(self._kept, "conn", None)
        self._kept.conn = None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Close this thread's kept connection (the others close when their threads end)."""
        self._drop(True)

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
        for _page in range(1000):  # bounded: a CA never has that many pages
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
        encrypted = self.encrypted_key(entry)
        try:
            return _stepca_token.decrypt_provisioner_key(entry, encrypted, password)
        except _stepca_token.TokenError as exc:
            raise StepCAError(str(exc), kind=exc.kind) from None

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
        """:func:`_stepca_token.mint_token` for this CA's audience and pinned root."""
        return _stepca_token.mint_token(
            key,
            audience=self._audience_base + audience_path,
            subject=subject,
            root_fingerprint=self.root_fingerprint,
            sans=sans,
            now=now,
        )

    # ---- signing

    def prepare(
        self, request: SignRequest, key: ProvisionerKey | None = None
    ) -> _stepca_token.Authorisation:
        """:func:`_stepca_token.authorise`: what the request's token carries, checked locally.

        Raises :class:`StepCAError` (``invalid``, ``san_not_allowed``, ``duration``).
        """
        try:
            return _stepca_token.authorise(request, key)
        except _stepca_token.TokenError as exc:
            raise StepCAError(str(exc), kind=exc.kind) from None

    def sign(
        self, key: ProvisionerKey, request: SignRequest, *, check_limits: bool = True
    ) -> SignedCertificate:
        """Sign one CSR: mint a fresh token per attempt and POST ``/1.0/sign``."""
        info = self.prepare(request, key if check_limits else None)

        def body() -> dict[str, Any]:
            payload: dict[str, Any] = {
                "csr": request.csr,
                "ott": self.mint_token(key, info.subject, sans=info.sans),
            }
            if request.not_before:
                payload["notBefore"] = request.not_before
            if request.effective_not_after():
                payload["notAfter"] = request.effective_not_after()
            return payload

        label = info.label
        try:
            answer = self._request("POST", "/1.0/sign", body_factory=body, idempotent=False)
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
        outcomes: list[SignOutcome] = [SignOutcome() for _request in requests]
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
        """Passively revoke ``serial`` (any form :func:`parse_serial` takes)."""
        number = parse_serial(serial)
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


def parse_serial(value: Any) -> int:
    """:func:`_crypto.parse_serial`, raising :class:`StepCAError` (``invalid``)."""
    try:
        return _crypto.parse_serial(value)
    except _crypto.CryptoError as exc:
        raise StepCAError(str(exc), kind="invalid") from None


def _reason_text(reason: Any) -> str:
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return f"name resolution failed ({reason.strerror})"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or reason.__class__.__name__


def _error_message(raw: bytes, reason: str) -> str:
    """The CA's ``message`` from an error answer, else its text or the HTTP reason."""
    try:
        answer = json.loads(raw)
        message = answer.get("message") if isinstance(answer, dict) else None
    except ValueError:
        message = None
    if not message:
        message = raw.decode("utf-8", "replace").strip()[:300] or reason or "no details"
    return str(message)


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether a kept connection's socket reads as ready (the CA closed it, or sent what no
    request asked for): then it must not carry another request. ``poll``, not ``select``,
    which cannot watch a descriptor of 1024 or more (a busy controller has those)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])


def _https_proxy(host: str) -> tuple[str, int] | None:
    """``(host, port)`` of the proxy the environment names for HTTPS to ``host``, if any
    (``https_proxy`` and ``no_proxy``, read as urllib reads them)."""
    proxy = urllib.request.getproxies().get("https")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    parsed = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if not parsed.hostname:
        return None
    return parsed.hostname, parsed.port or 80


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
        not_before=_stepca_token.rfc3339(_crypto.not_valid_before(leaf)),
        not_after=_stepca_token.rfc3339(_crypto.not_valid_after(leaf)),
        subject=leaf.subject.rfc4514_string(),
        sans=[san.value for san in _crypto.sans_of(leaf.extensions)],
    )
