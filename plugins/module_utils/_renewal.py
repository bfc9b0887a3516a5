# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Renewal between Ansible runs: the program a systemd timer runs on the host.

The ``certificate`` role (``certificate_renew_timer``) copies this file, ``_crypto``,
``_item_lock`` and ``_io`` to ``/usr/local/lib/mtls-rollout/`` and runs it from a oneshot
service, once per certificate, with a JSON settings file the role writes (:class:`Settings`).
One run:

1. **decide** (:func:`decide`), under the certificate lock (:mod:`._item_lock`, shared with
   the role's ``certificate_plan`` and ``certificate_install``): the certificate must still fit
   its key and chain to the trust bundle; it is renewed only when less than ``renew_before``
   is left, by the same rule the role itself applies (:func:`._crypto.evaluate_certificate`);
2. **request** (:func:`request_renewal`), holding no lock: ``POST /1.0/renew`` (or
   ``/1.0/rekey`` with a CSR for a key made here; never while a ``<key>.next`` it did not make
   is there), TLS verified against the trust bundle only. A certificate
   with the clientAuth usage authenticates as TLS client certificate (mTLS). One without it (the
   ``server`` profile) cannot be a TLS client certificate, so it sends a renewal token
   instead: a JWT signed by the certificate's own key, with the certificate chain in its
   ``x5cInsecure`` header, as step-ca's renew endpoint accepts it. Rekeying needs mTLS;
   step-ca's rekey endpoint takes no token;
3. **verify** (:func:`verify_renewed`): the answer chains to the trust bundle, holds the
   expected public key, the same subject, SANs and extended key usage, and ends later;
4. **write** (:func:`write_renewed`), under the lock again, and only if the certificate, its
   key and ``<key>.next`` are still what step 1 read (else the certificate role changed them
   meanwhile, and nothing is written): atomically, with the old file's mode and owner. With a
   new key: key to ``<key>.next``, certificate, then the rename of ``<key>.next`` over
   ``<key>`` (the role's crash-safe order; an interrupted swap is finished on the next run).
   The reload is marked pending first, so a run killed before step 5 is reloaded by the next;
5. **reload** (holding no lock): the item's commands, in order (for NGINX ``nginx -t``, then
   ``systemctl reload nginx``); the first failure stops them and is remembered, so the next
   run tries them again even when nothing needs renewing.

Every failure raises :class:`RenewalError`; :func:`main` prints the reason (the journal keeps
it) and exits 1. Nothing is written before the answer has passed every check.

Only the standard library and ``cryptography`` (and the collection's ``_crypto``,
``_item_lock`` and ``_io``, installed beside it) are used, and the code runs on Python 3.8.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import secrets
import ssl
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterator

from ansible_collections.mtls.rollout.plugins.module_utils import _crypto, _io, _item_lock

try:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
except ImportError:  # reported through _crypto.HAS_CRYPTOGRAPHY
    pass

STAGED_SUFFIX = ".next"
PENDING_SUFFIX = ".reload-pending"
TOKEN_LIFETIME = 300
DEFAULT_TIMEOUT = 30.0
# The settings file's keys; ``state_dir`` holds the reload-pending markers.
SETTING_KEYS = (
    "name",
    "ca_url",
    "trust_bundle",
    "cert_path",
    "key_path",
    "common_name",
    "subject_alt_names",
    "renew_before",
    "rekey",
    "reload",
    "timeout",
    "state_dir",
)


class RenewalError(Exception):
    """A renewal step failed; the message says why and is safe for the journal."""


@dataclass(frozen=True)
class Settings:
    """One certificate's renewal settings (the JSON file the role writes)."""

    name: str
    ca_url: str
    trust_bundle: str
    cert_path: str
    key_path: str
    common_name: str
    subject_alt_names: tuple[str, ...] = ()
    renew_before: str = "0.33"
    rekey: bool = False
    reload: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    state_dir: str = "/var/lib/mtls-rollout/renew"

    @classmethod
    def from_dict(cls, data: Any) -> Settings:
        if not isinstance(data, dict):
            raise RenewalError("the settings file must hold a JSON object")
        unknown = sorted(set(data) - set(SETTING_KEYS))
        if unknown:
            raise RenewalError(f"unknown settings: {', '.join(unknown)}")
        missing = [key for key in SETTING_KEYS[:6] if not data.get(key)]
        if missing:
            raise RenewalError(f"settings missing: {', '.join(missing)}")
        values = dict(data)
        values["subject_alt_names"] = tuple(str(v) for v in data.get("subject_alt_names") or ())
        values["reload"] = tuple(str(v) for v in data.get("reload") or ())
        values["rekey"] = bool(data.get("rekey", False))
        values["renew_before"] = str(data.get("renew_before", "0.33"))
        values["timeout"] = float(data.get("timeout", DEFAULT_TIMEOUT))
        settings = cls(**values)
        settings.threshold()  # validate early
        settings.expected_sans()
        return settings

    @classmethod
    def load(cls, path: str) -> Settings:
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except OSError as exc:
            raise RenewalError(f"cannot read {path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise RenewalError(f"{path} is not JSON: {exc}") from None
        return cls.from_dict(data)

    def as_dict(self) -> dict[str, Any]:
        data = {key: getattr(self, key) for key in SETTING_KEYS}
        data["subject_alt_names"] = list(self.subject_alt_names)
        data["reload"] = list(self.reload)
        return data

    def threshold(self) -> _crypto.RenewBefore:
        try:
            return _crypto.RenewBefore.parse(self.renew_before)
        except _crypto.CryptoError as exc:
            raise RenewalError(str(exc)) from None

    def expected_sans(self) -> tuple[_crypto.San, ...]:
        try:
            return _crypto.certificate_sans(
                self.common_name, _crypto.parse_sans(list(self.subject_alt_names))
            )
        except _crypto.CryptoError as exc:
            raise RenewalError(str(exc)) from None

    @property
    def staged_key_path(self) -> str:
        return self.key_path + STAGED_SUFFIX

    @property
    def pending_path(self) -> str:
        return os.path.join(self.state_dir, self.name + PENDING_SUFFIX)


# ----------------------------------------------------------------------------- reading


@dataclass
class Current:
    """What is on disk: the certificate file (its bytes and certificates), the key, the bundle."""

    cert_bytes: bytes
    certs: list[Any]
    key: Any
    anchors: list[Any]
    key_bytes: bytes = b""

    @property
    def leaf(self) -> Any:
        return self.certs[0]


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise RenewalError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None


def read_current(settings: Settings) -> Current:
    """Load the certificate, its key and the trust bundle; raises :class:`RenewalError`."""
    cert_bytes = _read(settings.cert_path, "certificate")
    key_bytes = _read(settings.key_path, "key")
    try:
        certs = _crypto.load_certificates(cert_bytes, settings.cert_path)
        key = _crypto.load_private_key(key_bytes, None, settings.key_path).key
        anchors = _crypto.load_certificates(
            _read(settings.trust_bundle, "trust bundle"), settings.trust_bundle
        )
    except _crypto.CryptoError as exc:
        raise RenewalError(str(exc)) from None
    return Current(cert_bytes, certs, key, anchors, key_bytes)


def finish_interrupted_swap(settings: Settings) -> bool:
    """When an earlier run died after writing a rekeyed certificate but before renaming its
    key, the certificate belongs to ``<key>.next``: move it over ``<key>``. Returns whether
    it did."""
    if not os.path.exists(settings.staged_key_path):
        return False
    try:
        staged = _crypto.load_private_key(
            _read(settings.staged_key_path, "staged key"), None, settings.staged_key_path
        ).key
        leaf = _crypto.load_certificate(_read(settings.cert_path, "certificate"))
    except (_crypto.CryptoError, RenewalError):
        return False
    if not _crypto.same_public_key(leaf.public_key(), staged):
        return False
    try:
        os.replace(settings.staged_key_path, settings.key_path)
    except OSError as exc:
        raise RenewalError(
            f"cannot move {settings.staged_key_path} to {settings.key_path}: {exc.strerror or exc}"
        ) from None
    return True


# ----------------------------------------------------------------------------- decide


@dataclass
class Decision:
    """Whether to renew now, and why (one line for the journal)."""

    renew: bool
    reason: str
    facts: dict[str, Any] = field(default_factory=dict)


def decide(settings: Settings, current: Current, now: datetime | None = None) -> Decision:
    """Renew when less than the threshold is left (the role's own rule).

    A certificate that no longer fits its key or its trust bundle, or has expired, cannot be
    renewed with itself: that needs an Ansible run, and raises :class:`RenewalError`.
    """
    now = now or datetime.now(timezone.utc)
    fit = _crypto.evaluate_certificate(
        current.leaf,
        _crypto.Desired(key=current.key, anchors=current.anchors, intermediates=current.certs[1:]),
        now,
    )
    if fit.needs_signing:
        raise RenewalError(
            f"the certificate cannot renew itself ({fit.reason}); run the certificate role"
        )
    verdict = _crypto.evaluate_certificate(
        current.leaf, _crypto.Desired(renew_before=settings.threshold()), now
    )
    facts = verdict.facts
    left = _crypto.format_duration(facts["remaining_seconds"])
    threshold = settings.threshold().describe(facts["lifetime_seconds"])
    if verdict.needs_signing:
        return Decision(True, f"{verdict.reason}", facts)
    return Decision(
        False,
        f"not due: {left} left of serial {facts['serial']}, renewal when less than {threshold}",
        facts,
    )


# ----------------------------------------------------------------------------- request


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# JWS algorithms (RFC 7518) by EC key size: name and hash.
_EC_ALGORITHMS = {256: ("ES256", "SHA256"), 384: ("ES384", "SHA384"), 521: ("ES512", "SHA512")}


def _jws_alg(key: Any) -> tuple[str, Any]:
    """The JWS ``alg`` for ``key`` and how to sign with it."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = (key.curve.key_size + 7) // 8
        found = _EC_ALGORITHMS.get(key.curve.key_size)
        if found is None:
            raise RenewalError(f"no JWS algorithm for curve {key.curve.name}")
        name, algorithm = found

        def sign_ec(data: bytes) -> bytes:
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(getattr(hashes, algorithm)())))
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")

        return name, sign_ec
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256", lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA", key.sign
    raise RenewalError("the key type cannot sign a renewal token")


def renewal_token(current: Current, ca_url: str, now: float | None = None) -> str:
    """A renewal token: a JWT signed by the certificate's key, the chain in ``x5cInsecure``.

    step-ca checks the chain against its roots (expiry aside), the signature with the
    leaf's key, ``sub`` = the leaf's common name, ``aud`` = its ``/1.0/renew`` URL, the
    times, and that ``jti`` is used once.
    """
    alg, sign = _jws_alg(current.key)
    chain = [
        base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")
        for cert in current.certs
    ]
    issued = int(time.time() if now is None else now)
    common_name = _crypto.name_to_dict(current.leaf.subject).get("common_name", "")
    parsed = urllib.parse.urlsplit(ca_url)
    claims = {
        "iss": "step-ca-client/1.0",
        "sub": common_name,
        "aud": f"https://{parsed.netloc}{parsed.path.rstrip('/')}/1.0/renew",
        "iat": issued,
        "nbf": issued,
        "exp": issued + TOKEN_LIFETIME,
        "jti": secrets.token_hex(32),
    }
    header = {"alg": alg, "typ": "JWT", "x5cInsecure": chain}
    signing_input = (
        _b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    return f"{signing_input}.{_b64url(sign(signing_input.encode('ascii')))}"


def uses_mtls(current: Current) -> bool:
    """Whether the certificate can be a TLS client certificate (it has clientAuth)."""
    return "clientAuth" in _crypto.eku_names(current.leaf.extensions)


def _context(settings: Settings, client: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(
        purpose=ssl.Purpose.SERVER_AUTH, cafile=settings.trust_bundle
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if client:
        try:
            context.load_cert_chain(settings.cert_path, settings.key_path)
        except (OSError, ssl.SSLError) as exc:
            raise RenewalError(
                f"cannot use {settings.cert_path} and {settings.key_path} as TLS client"
                f" certificate: {exc}"
            ) from None
    return context


def _post(
    settings: Settings,
    path: str,
    body: dict[str, Any] | None,
    context: ssl.SSLContext,
    headers: dict[str, str],
) -> dict[str, Any]:
    parsed = urllib.parse.urlsplit(settings.ca_url)
    if parsed.scheme != "https" or not parsed.hostname:
        raise RenewalError(f"ca_url must be an https:// URL, got {settings.ca_url!r}")
    target = f"{settings.ca_url.rstrip('/')}{path}"
    conn = http.client.HTTPSConnection(
        parsed.hostname, parsed.port or 443, context=context, timeout=settings.timeout
    )
    data = None if body is None else json.dumps(body).encode()
    all_headers = {"Accept": "application/json"}
    if data is not None:
        all_headers["Content-Type"] = "application/json"
    all_headers.update(headers)
    try:
        conn.request("POST", parsed.path.rstrip("/") + path, body=data, headers=all_headers)
        response = conn.getresponse()
        raw = response.read()
    except ssl.SSLCertVerificationError as exc:
        raise RenewalError(
            f"TLS verification of {target} against the trust bundle {settings.trust_bundle}"
            f" failed: {exc.verify_message or exc}"
        ) from None
    except (OSError, http.client.HTTPException) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if isinstance(exc, ConnectionRefusedError):
            reason = "connection refused"
        raise RenewalError(
            f"the CA at {target} is unreachable: {reason or type(exc).__name__}"
        ) from None
    finally:
        conn.close()
    try:
        answer = json.loads(raw) if raw else {}
    except ValueError:
        answer = None
    if response.status >= 300:
        message = answer.get("message") if isinstance(answer, dict) else None
        message = message or raw.decode("utf-8", "replace").strip()[:300] or response.reason
        raise RenewalError(f"the CA refused {path} ({response.status}): {message}")
    if not isinstance(answer, dict) or not answer.get("crt"):
        raise RenewalError(f"the CA's answer to {path} holds no certificate")
    return answer


@dataclass
class Answer:
    """The CA's new certificate (leaf first), and the new key when rekeyed."""

    certs: list[Any]
    key: Any = None


def request_renewal(settings: Settings, current: Current, rekey: bool | None = None) -> Answer:
    """Ask the CA for the new certificate (see the module's description for how); with a
    new key when ``rekey`` (default: the settings')."""
    mtls = uses_mtls(current)
    new_key = None
    if settings.rekey if rekey is None else rekey:
        if not mtls:
            raise RenewalError(
                "rekey needs a certificate with the clientAuth usage (step-ca's /1.0/rekey"
                " takes only mTLS); this one has"
                f" {', '.join(_crypto.eku_names(current.leaf.extensions)) or 'none'}"
            )
        new_key = _crypto.generate_private_key(_crypto.KeySpec.of(current.key))
        spec = _crypto.CsrSpec.create(
            {"common_name": settings.common_name},
            list(settings.subject_alt_names),
            _crypto.profile_of(current.leaf.extensions),
        )
        body = {"csr": _crypto.csr_pem(_crypto.build_csr(new_key, spec))}
        answer = _post(settings, "/1.0/rekey", body, _context(settings, True), {})
    elif mtls:
        answer = _post(settings, "/1.0/renew", None, _context(settings, True), {})
    else:
        token = renewal_token(current, settings.ca_url)
        answer = _post(
            settings,
            "/1.0/renew",
            None,
            _context(settings, False),
            {"Authorization": f"Bearer {token}"},
        )
    return Answer(answer_certificates(answer), new_key)


def answer_certificates(answer: dict[str, Any]) -> list[Any]:
    """The certificates of the CA's answer (``certChain``, else ``crt`` and ``ca``), leaf
    first; anything else than PEM strings there is refused with :class:`RenewalError`."""
    pems = answer.get("certChain") or [answer.get("crt"), answer.get("ca")]
    if not isinstance(pems, list) or not all(isinstance(p, str) for p in pems if p):
        raise RenewalError("the CA's answer holds no certificate chain of PEM strings")
    data = "\n".join(pem.strip() for pem in pems if pem).encode("ascii", "replace")
    try:
        return _crypto.load_certificates(data, "the CA's answer")
    except _crypto.CryptoError as exc:
        raise RenewalError(str(exc)) from None


# ----------------------------------------------------------------------------- verify


def verify_renewed(
    settings: Settings, current: Current, answer: Answer, now: datetime | None = None
) -> list[str]:
    """Why the CA's answer must not be installed; empty when it may."""
    now = now or datetime.now(timezone.utc)
    old, new = current.leaf, answer.certs[0]
    key = answer.key if answer.key is not None else current.key
    reasons = []
    ok, message = _crypto.chains_to(new, current.anchors, answer.certs[1:], now)
    if not ok:
        reasons.append(f"does not chain to the trust bundle: {message}")
    if not _crypto.same_public_key(new.public_key(), key):
        reasons.append(
            "holds another public key than " + ("the new key" if answer.key else "the key")
        )
    if new.subject != old.subject:
        reasons.append(
            f"subject is {new.subject.rfc4514_string()!r}, was {old.subject.rfc4514_string()!r}"
        )
    common_name = _crypto.name_to_dict(new.subject).get("common_name")
    if common_name != settings.common_name:
        reasons.append(f"common name is {common_name!r}, wanted {settings.common_name!r}")
    san_diff = _crypto.format_san_diff(_crypto.sans_of(new.extensions), settings.expected_sans())
    if san_diff:
        reasons.append(f"SANs differ: {san_diff}")
    if _crypto.eku_names(new.extensions) != _crypto.eku_names(old.extensions):
        reasons.append(
            f"extended key usage is {_crypto.eku_names(new.extensions)},"
            f" was {_crypto.eku_names(old.extensions)}"
        )
    if _crypto.not_valid_after(new) <= _crypto.not_valid_after(old):
        reasons.append(
            f"does not end later ({_crypto.not_valid_after(new):%Y-%m-%dT%H:%M:%SZ}) than the"
            f" current certificate ({_crypto.not_valid_after(old):%Y-%m-%dT%H:%M:%SZ})"
        )
    if not _crypto.not_valid_before(new) <= now <= _crypto.not_valid_after(new):
        reasons.append("is not valid now")
    return reasons


# ----------------------------------------------------------------------------- write


def _pem(cert: Any) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_like(path: str, content: bytes, like: str, mode: int | None = None) -> None:
    """Write ``content`` to ``path`` atomically (:func:`._io.write_atomic`: owner and mode
    set through the open temporary file before the rename, so the content is never
    readable by others on the way), with the mode and owner of ``like``."""
    try:
        info = os.stat(like)
    except OSError as exc:
        raise RenewalError(f"cannot read {like}: {exc.strerror or exc}") from None
    root = os.geteuid() == 0  # only root can give a file to another owner
    try:
        _io.write_atomic(
            path,
            content,
            mode=info.st_mode & 0o7777 if mode is None else mode,
            uid=info.st_uid if root else -1,
            gid=info.st_gid if root else -1,
        )
    except _io.FileIOError as exc:
        raise RenewalError(str(exc)) from None


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


def write_renewed(settings: Settings, answer: Answer) -> None:
    """Install the verified answer: the certificate followed by its chain, in one file.

    A new key goes to ``<key>.next`` first (mode 0600, the key's owner), then the
    certificate, then the key is renamed into place: the new key is only ever used with its
    new certificate, and a crash in between is finished by :func:`finish_interrupted_swap`
    (or the role's plan) on the next run.
    """
    content = b"".join(_pem(cert) for cert in answer.certs)
    if answer.key is not None:
        write_like(
            settings.staged_key_path,
            _crypto.serialize_private_key(answer.key),
            settings.key_path,
            mode=0o600,
        )
    write_like(settings.cert_path, content, settings.cert_path)
    if answer.key is not None:
        try:
            os.replace(settings.staged_key_path, settings.key_path)
        except OSError as exc:
            raise RenewalError(
                f"cannot move {settings.staged_key_path} to {settings.key_path}:"
                f" {exc.strerror or exc}"
            ) from None


# ----------------------------------------------------------------------------- reload


def reload_services(settings: Settings) -> list[str]:
    """Run the reload commands in order (``/bin/sh -c``), stopping at the first failure.

    The first failing command is remembered in ``<state_dir>/<name>.reload-pending`` so that
    the next run tries again; success removes the marker. Returns what was run.
    """
    ran = []
    for command in settings.reload:
        # The commands come from the inventory, through the root-owned settings file.
        proc = subprocess.run(  # noqa: S603
            ["/bin/sh", "-c", command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
        )
        output = proc.stdout.decode("utf-8", "replace").strip()
        if proc.returncode != 0:
            _mark_pending(settings, command)
            raise RenewalError(
                f"reload command {command!r} failed with exit code {proc.returncode}"
                + (f": {output}" if output else "")
                + "; the certificate is in place, and the next run retries the reload"
            )
        ran.append(command)
    _unlink(settings.pending_path)
    return ran


def _mark_pending(settings: Settings, command: str) -> None:
    try:
        os.makedirs(settings.state_dir, mode=0o755, exist_ok=True)
        with open(settings.pending_path, "w", encoding="utf-8") as handle:
            handle.write(command + "\n")
    except OSError:
        pass


# ----------------------------------------------------------------------------- run


@dataclass
class Outcome:
    """What a run did, for the journal and the tests."""

    renewed: bool
    message: str
    serial: str | None = None
    reloaded: list[str] = field(default_factory=list)


def run(
    settings: Settings,
    force: bool = False,
    now: datetime | None = None,
    lock_wait: float | None = None,
) -> Outcome:
    """One timer run: decide, request, verify, write, reload. Raises :class:`RenewalError`.

    The certificate lock (:mod:`._item_lock`) is held twice, briefly: to read and decide, and
    to check that nothing changed meanwhile and write. The CA request between them holds no
    lock, so a slow CA never keeps the certificate role waiting. ``lock_wait``: how long to
    wait for the lock each time (default :data:`._item_lock.LOCK_WAIT`).
    """
    wait = _item_lock.LOCK_WAIT if lock_wait is None else lock_wait
    with _locked(settings, wait):
        swapped = finish_interrupted_swap(settings)
        current = read_current(settings)
        decision = decide(settings, current, now)
        staged_before = _staged_bytes(settings)
    if not (decision.renew or force):
        outcome = Outcome(False, decision.reason)
        why = ""
        if swapped:
            why = "finished an interrupted key swap"
        elif os.path.exists(settings.pending_path):
            why = "an earlier reload failed"
        if why:
            outcome.reloaded = reload_services(settings)
            outcome.message += f"; {why}, reloaded"
        return outcome

    # A <key>.next the certificate does not belong to is not this program's to replace.
    foreign = settings.rekey and staged_before is not None
    answer = request_renewal(settings, current, settings.rekey and not foreign)
    reasons = verify_renewed(settings, current, answer, now)
    if reasons:
        raise RenewalError(
            "refused the CA's certificate, which "
            + "; ".join(reasons)
            + f"; {settings.cert_path} is unchanged"
        )
    with _locked(settings, wait):
        if _changed_since(settings, current, staged_before):
            raise RenewalError(
                f"{settings.cert_path}, its key or {settings.staged_key_path} changed while the"
                " CA was asked (the certificate role ran meanwhile); the CA's certificate was"
                " not written, and the next run decides again"
            )
        if settings.reload:
            # Remembered before the write: a run killed between the write and the reload
            # leaves the marker, and the next run reloads.
            _mark_pending(settings, "(the reload after a renewal)")
        write_renewed(settings, answer)
    facts = _crypto.certificate_facts(answer.certs[0])
    old_serial = _crypto.serial_hex(current.leaf.serial_number)
    message = (
        f"renewed ({decision.reason if decision.renew else 'forced'}): serial {old_serial} ->"
        f" {facts['serial']}, valid until {facts['not_after']}"
        + (", new key" if answer.key is not None else "")
    )
    if foreign:
        message += (
            f"; kept the key without rekey: {settings.staged_key_path} is not this"
            " certificate's key (a key change the certificate role staged and has not"
            " installed yet, or left by an interrupted run), so it was left as it is; the"
            " role's next run installs or removes it"
        )
    try:
        reloaded = reload_services(settings)
    except RenewalError as exc:
        raise RenewalError(f"{message}; but {exc}") from None
    return Outcome(True, message, facts["serial"], reloaded)


@contextlib.contextmanager
def _locked(settings: Settings, wait: float) -> Iterator[None]:
    try:
        with _item_lock.hold([_item_lock.folder_of(settings.key_path)], wait):
            yield
    except _item_lock.LockError as exc:
        why = (
            ": the certificate role or another renewal is changing certificates there"
            if isinstance(exc, _item_lock.LockBusy)
            else ""
        )
        raise RenewalError(
            f"{exc}{why}; {settings.cert_path} is unchanged, and the next run tries again"
        ) from None


def _staged_bytes(settings: Settings) -> bytes | None:
    """The content of ``<key>.next`` (run after :func:`finish_interrupted_swap`, so one the
    certificate belongs to is gone): ``None`` when there is none."""
    if not os.path.lexists(settings.staged_key_path):
        return None
    try:
        with open(settings.staged_key_path, "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def _changed_since(settings: Settings, current: Current, staged: bytes | None) -> bool:
    """Whether the certificate, its key or ``<key>.next`` differ from what the run read."""
    try:
        now_cert = _read(settings.cert_path, "certificate")
        now_key = _read(settings.key_path, "key")
    except RenewalError:
        return True
    return (now_cert, now_key, _staged_bytes(settings)) != (
        current.cert_bytes,
        current.key_bytes,
        staged,
    )


def _say(stream: Any, line: str) -> None:
    """One line for the journal (systemd keeps the service's stdout and stderr)."""
    stream.write(line + "\n")
    stream.flush()


USAGE = "usage: renew.py SETTINGS.json [--force]"


def main(argv: list[str] | None = None) -> int:
    """The program's entry point: prints one line per run and returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    force = "--force" in args
    paths = [arg for arg in args if arg != "--force"]
    if len(paths) != 1 or paths[0].startswith("-"):
        _say(sys.stderr, USAGE)
        return 2
    if not _crypto.HAS_CRYPTOGRAPHY:
        _say(sys.stderr, "Python cryptography is missing (Debian/Ubuntu: python3-cryptography)")
        return 1
    name = os.path.basename(paths[0])
    try:
        settings = Settings.load(paths[0])
        name = settings.name
        outcome = run(settings, force=force)
    except RenewalError as exc:
        _say(sys.stderr, f"{name}: renewal failed: {exc}")
        return 1
    except _crypto.CryptoError as exc:
        _say(sys.stderr, f"{name}: renewal failed: {exc}")
        return 1
    _say(sys.stdout, f"{name}: {outcome.message}")
    for command in outcome.reloaded:
        _say(sys.stdout, f"{name}: ran {command!r}")
    return 0
