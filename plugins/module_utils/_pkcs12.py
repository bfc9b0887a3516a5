# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Password-protected PKCS#12 bundles (key, certificate, chain) for the ``pkcs12`` module.

A bundle is for a person: a browser or an operating system key store imports it. Two
encryptions are offered:

``modern`` (the default)
    key and certificates encrypted with PBES2: PBKDF2-HMAC-SHA256 and AES-256-CBC; the MAC
    is HMAC-SHA256. Needs cryptography >= 38 on the managed host.
``legacy``
    PKCS#12's own pbeWithSHAAnd3-KeyTripleDES-CBC for key and certificates, HMAC-SHA1 MAC;
    only for importers that cannot read the modern form (old Windows, macOS and Java).

PKCS#12 encryption uses a random salt, so two writes of the same content never give the same
bytes. Whether a bundle is up to date is therefore decided by *opening* it with the
passphrase and comparing its content (key, certificate, chain, friendly name) and the
encryption it uses, which :func:`detect_encryption` reads from the unencrypted ASN.1
structure around the encrypted parts.

Public API: :data:`ENCRYPTIONS`, :func:`modern_supported`, :class:`Pkcs12Error`,
:class:`Encryption`, :func:`expected_encryption`, :func:`detect_encryption`,
:class:`Bundle`, :func:`load_inputs`, :func:`open_bundle`, :func:`bundle_differences`,
:func:`build_bundle`, :class:`Assessment`, :class:`Pkcs12Backend`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ansible_collections.mtls.rollout.plugins.module_utils import _crypto

try:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12
except ImportError:  # reported by _crypto.require_cryptography
    pass

__all__ = [
    "ENCRYPTIONS",
    "Assessment",
    "Bundle",
    "Encryption",
    "Pkcs12Backend",
    "Pkcs12Error",
    "build_bundle",
    "bundle_differences",
    "detect_encryption",
    "expected_encryption",
    "load_inputs",
    "modern_supported",
    "open_bundle",
]

ENCRYPTIONS = ("modern", "legacy")

# PBKDF2 rounds for the modern key and certificate encryption. Note that cryptography fixes
# the MAC's own iteration count (2048 today); the MAC lets anyone test a guessed passphrase,
# so the passphrase's own strength is what protects the bundle (see docs/people.md).
MODERN_KDF_ROUNDS = 100_000
# OpenSSL's default count: what old importers were tested with.
LEGACY_KDF_ROUNDS = 2048

MAX_BUNDLE_SIZE = 1024 * 1024

# Names of the algorithms, as reported in results and diffs.
MODERN_CIPHER = "PBES2 PBKDF2-HMAC-SHA256 AES-256-CBC"
LEGACY_CIPHER = "PBE-SHA1-3DES"
MODERN_MAC = "HMAC-SHA256"
LEGACY_MAC = "HMAC-SHA1"


class Pkcs12Error(Exception):
    """Invalid input or unusable material. The message is meant for the user as is."""


def modern_supported() -> bool:
    """Whether this cryptography can write the modern encryption (cryptography >= 38)."""
    private_format = getattr(serialization, "PrivateFormat", None)
    return hasattr(getattr(private_format, "PKCS12", None), "encryption_builder") and hasattr(
        pkcs12, "PBES"
    )


def _cryptography_version() -> str:
    try:
        import cryptography

        return str(cryptography.__version__)
    except (ImportError, AttributeError):
        return "unknown"


# ------------------------------------------------------------------ encryption in use


@dataclass(frozen=True)
class Encryption:
    """The protection of a bundle, as far as it can be read without the passphrase.

    ``scheme`` is ``modern``, ``legacy``, ``other`` (readable but neither) or ``unknown``
    (the structure could not be parsed). ``key_cipher`` and ``certificate_cipher`` name the
    algorithms (``none`` when that part is stored in the clear), ``mac`` the integrity check.
    The iteration counts are informative only and take no part in comparisons.
    """

    scheme: str
    key_cipher: str | None = None
    certificate_cipher: str | None = None
    mac: str | None = None
    kdf_rounds: int | None = field(default=None, compare=False)
    mac_rounds: int | None = field(default=None, compare=False)

    def facts(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme,
            "key_cipher": self.key_cipher,
            "certificate_cipher": self.certificate_cipher,
            "mac": self.mac,
            "kdf_rounds": self.kdf_rounds,
            "mac_rounds": self.mac_rounds,
        }


def expected_encryption(scheme: str) -> Encryption:
    """What :func:`detect_encryption` reports for a bundle :func:`build_bundle` wrote."""
    if scheme == "modern":
        return Encryption("modern", MODERN_CIPHER, MODERN_CIPHER, MODERN_MAC, MODERN_KDF_ROUNDS)
    if scheme == "legacy":
        return Encryption("legacy", LEGACY_CIPHER, LEGACY_CIPHER, LEGACY_MAC, LEGACY_KDF_ROUNDS)
    raise Pkcs12Error(f"encryption must be one of {ENCRYPTIONS}, not {scheme!r}")


class _DerError(ValueError):
    pass


# Object identifiers met in PKCS#12 files.
_OID_DATA = "1.2.840.113549.1.7.1"
_OID_ENCRYPTED_DATA = "1.2.840.113549.1.7.6"
_OID_KEY_BAG = "1.2.840.113549.1.12.10.1.1"
_OID_SHROUDED_KEY_BAG = "1.2.840.113549.1.12.10.1.2"
_OID_CERT_BAG = "1.2.840.113549.1.12.10.1.3"
_OID_PBES2 = "1.2.840.113549.1.5.13"
_OID_PBKDF2 = "1.2.840.113549.1.5.12"
_PKCS12_PBE = {
    "1.2.840.113549.1.12.1.1": "PBE-SHA1-RC4-128",
    "1.2.840.113549.1.12.1.2": "PBE-SHA1-RC4-40",
    "1.2.840.113549.1.12.1.3": LEGACY_CIPHER,
    "1.2.840.113549.1.12.1.4": "PBE-SHA1-2DES",
    "1.2.840.113549.1.12.1.5": "PBE-SHA1-RC2-128",
    "1.2.840.113549.1.12.1.6": "PBE-SHA1-RC2-40",
}
_PRF = {
    "1.2.840.113549.2.7": "HMAC-SHA1",
    "1.2.840.113549.2.8": "HMAC-SHA224",
    "1.2.840.113549.2.9": "HMAC-SHA256",
    "1.2.840.113549.2.10": "HMAC-SHA384",
    "1.2.840.113549.2.11": "HMAC-SHA512",
}
_CIPHERS = {
    "2.16.840.1.101.3.4.1.2": "AES-128-CBC",
    "2.16.840.1.101.3.4.1.22": "AES-192-CBC",
    "2.16.840.1.101.3.4.1.42": "AES-256-CBC",
    "1.2.840.113549.3.7": "DES-EDE3-CBC",
}
_MAC_DIGESTS = {
    "1.3.14.3.2.26": "HMAC-SHA1",
    "2.16.840.1.101.3.4.2.1": "HMAC-SHA256",
    "2.16.840.1.101.3.4.2.2": "HMAC-SHA384",
    "2.16.840.1.101.3.4.2.3": "HMAC-SHA512",
    "2.16.840.1.101.3.4.2.4": "HMAC-SHA224",
}

_SEQUENCE, _SET, _INTEGER, _OCTET_STRING, _OID, _CONTEXT_0 = 0x30, 0x31, 0x02, 0x04, 0x06, 0xA0


@dataclass(frozen=True)
class _Node:
    """One DER element: its tag and the span of its content in the buffer."""

    data: bytes
    tag: int
    start: int
    end: int

    @property
    def content(self) -> bytes:
        return self.data[self.start : self.end]

    def children(self) -> list[_Node]:
        nodes, position = [], self.start
        while position < self.end:
            node = _read_node(self.data, position, self.end)
            nodes.append(node)
            position = node.end
        return nodes

    def expect(self, tag: int) -> _Node:
        if self.tag != tag:
            raise _DerError(f"expected tag {tag:#x}, found {self.tag:#x}")
        return self

    def oid(self) -> str:
        raw = self.expect(_OID).content
        if not raw:
            raise _DerError("empty object identifier")
        first = raw[0] // 40 if raw[0] < 80 else 2
        parts, value = [first, raw[0] - 40 * first], 0
        for byte in raw[1:]:
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                parts.append(value)
                value = 0
        return ".".join(str(part) for part in parts)

    def integer(self) -> int:
        return int.from_bytes(self.expect(_INTEGER).content, "big", signed=True)

    def parse_content(self) -> _Node:
        """The single DER element that an OCTET STRING holds."""
        inner = self.expect(_OCTET_STRING)
        node = _read_node(self.data, inner.start, inner.end)
        if node.end != inner.end:
            raise _DerError("trailing data")
        return node


def _read_node(data: bytes, position: int, limit: int) -> _Node:
    """Read one definite-length DER element at ``position``; BER forms raise."""
    if position + 2 > limit:
        raise _DerError("truncated")
    tag, length = data[position], data[position + 1]
    if tag & 0x1F == 0x1F:
        raise _DerError("multi-byte tags are not used in PKCS#12")
    position += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or position + count > limit:
            raise _DerError("indefinite or oversized length")
        length = int.from_bytes(data[position : position + count], "big")
        position += count
    if position + length > limit:
        raise _DerError("truncated")
    return _Node(data, tag, position, position + length)


def _describe_algorithm(algorithm: _Node) -> tuple[str, int | None]:
    """Name and iteration count of a password-based encryption AlgorithmIdentifier."""
    parts = algorithm.expect(_SEQUENCE).children()
    oid = parts[0].oid()
    if oid in _PKCS12_PBE:
        return _PKCS12_PBE[oid], parts[1].expect(_SEQUENCE).children()[1].integer()
    if oid != _OID_PBES2:
        return oid, None
    kdf, cipher = parts[1].expect(_SEQUENCE).children()[:2]
    kdf_parts = kdf.expect(_SEQUENCE).children()
    cipher_oid = cipher.expect(_SEQUENCE).children()[0].oid()
    cipher_name = _CIPHERS.get(cipher_oid, cipher_oid)
    if kdf_parts[0].oid() != _OID_PBKDF2:
        return f"PBES2 {kdf_parts[0].oid()} {cipher_name}", None
    params = kdf_parts[1].expect(_SEQUENCE).children()
    rounds = params[1].integer()
    prf = "HMAC-SHA1"  # the default when the PRF is absent
    for param in params[2:]:
        if param.tag == _SEQUENCE:
            prf_oid = param.children()[0].oid()
            prf = _PRF.get(prf_oid, prf_oid)
    return f"PBES2 PBKDF2-{prf} {cipher_name}", rounds


def _join(names: set[str]) -> str | None:
    return ", ".join(sorted(names)) if names else None


def detect_encryption(data: bytes) -> Encryption:
    """Read which algorithms protect a PKCS#12 file, without the passphrase.

    Never raises: a file whose structure cannot be read (not PKCS#12, or BER with
    indefinite lengths as some Windows and Java tools write) gives scheme ``unknown``.
    """
    try:
        return _detect(data)
    except (_DerError, IndexError, ValueError):
        return Encryption("unknown")


def _detect(data: bytes) -> Encryption:
    pfx = _read_node(data, 0, len(data)).expect(_SEQUENCE).children()
    mac, mac_rounds = None, None
    if len(pfx) >= 3:
        mac_parts = pfx[2].expect(_SEQUENCE).children()
        digest_oid = mac_parts[0].expect(_SEQUENCE).children()[0].expect(_SEQUENCE).children()
        oid = digest_oid[0].oid()
        mac = _MAC_DIGESTS.get(oid, oid)
        mac_rounds = mac_parts[2].integer() if len(mac_parts) >= 3 else 1
    auth_safe = pfx[1].expect(_SEQUENCE).children()
    if auth_safe[0].oid() != _OID_DATA:
        return Encryption("other", mac=mac, mac_rounds=mac_rounds)  # public-key mode
    contents = auth_safe[1].expect(_CONTEXT_0).children()[0].parse_content().expect(_SEQUENCE)
    key_ciphers: set[str] = set()
    cert_ciphers: set[str] = set()
    rounds: set[int] = set()
    for info in contents.children():
        parts = info.expect(_SEQUENCE).children()
        kind = parts[0].oid()
        body = parts[1].expect(_CONTEXT_0).children()[0]
        if kind == _OID_ENCRYPTED_DATA:
            encrypted = body.expect(_SEQUENCE).children()[1].expect(_SEQUENCE).children()
            name, count = _describe_algorithm(encrypted[1])
            cert_ciphers.add(name)
            if count is not None:
                rounds.add(count)
            continue
        if kind != _OID_DATA:
            return Encryption("other", mac=mac, mac_rounds=mac_rounds)
        for bag in body.parse_content().expect(_SEQUENCE).children():
            bag_parts = bag.expect(_SEQUENCE).children()
            bag_kind = bag_parts[0].oid()
            if bag_kind == _OID_SHROUDED_KEY_BAG:
                shrouded = bag_parts[1].expect(_CONTEXT_0).children()[0]
                name, count = _describe_algorithm(shrouded.expect(_SEQUENCE).children()[0])
                key_ciphers.add(name)
                if count is not None:
                    rounds.add(count)
            elif bag_kind == _OID_KEY_BAG:
                key_ciphers.add("none")
            elif bag_kind == _OID_CERT_BAG:
                cert_ciphers.add("none")
    key_cipher, cert_cipher = _join(key_ciphers), _join(cert_ciphers)
    scheme = "other"
    for candidate in ENCRYPTIONS:
        wanted = expected_encryption(candidate)
        if (key_cipher, mac) == (wanted.key_cipher, wanted.mac) and cert_cipher in (
            wanted.certificate_cipher,
            None,  # a bundle without certificates
        ):
            scheme = candidate
    return Encryption(
        scheme, key_cipher, cert_cipher, mac, max(rounds) if rounds else None, mac_rounds
    )


# -------------------------------------------------------------------------- content


@dataclass
class Bundle:
    """What a PKCS#12 bundle holds (or should hold).

    ``friendly_name`` is ``None`` when there is none; ``friendly_name_known`` is false when
    this cryptography cannot read it from an existing bundle (before 36).
    """

    key: Any
    certificate: Any
    chain: list[Any]
    friendly_name: str | None
    encryption: Encryption
    friendly_name_known: bool = True

    def facts(self) -> dict[str, Any]:
        """Public facts for results and diffs: never key material, PEM or the passphrase."""
        facts: dict[str, Any] = {
            "friendly_name": self.friendly_name,
            "encryption": self.encryption.facts(),
            "key": None,
            "certificate": None,
            "chain": [_short_facts(cert) for cert in self.chain],
        }
        if self.key is not None:
            facts["key"] = _crypto.key_facts(self.key)
        if self.certificate is not None:
            facts["certificate"] = _short_facts(self.certificate)
        return facts


def _short_facts(cert: Any) -> dict[str, Any]:
    facts = _crypto.certificate_facts(cert)
    keep = ("subject_string", "issuer_string", "serial", "not_after", "fingerprint")
    return {name: facts[name] for name in keep}


def load_inputs(
    key_data: bytes,
    certificate_data: bytes,
    other_certificates: list[tuple[str, bytes]] | None = None,
    *,
    key_passphrase: str | None = None,
    friendly_name: str | None = None,
    encryption: str = "modern",
    key_name: str = "private key",
    certificate_name: str = "certificate",
) -> tuple[Bundle, list[str]]:
    """The wanted bundle from the input files' bytes, and warnings.

    The first certificate of ``certificate_data`` is the leaf; further certificates in it (a
    ``<name>.crt`` holding leaf and intermediate) and every certificate of
    ``other_certificates`` (``(name, bytes)`` pairs) form the chain, in that order, each
    certificate once. ``friendly_name`` ``None`` means the leaf's common name.
    Raises :class:`Pkcs12Error` for unreadable inputs or a key that does not match.
    """
    expected = expected_encryption(encryption)
    try:
        key = _crypto.load_private_key(key_data, key_passphrase, key_name).key
        certificates = _crypto.load_certificates(certificate_data, certificate_name)
        for name, data in other_certificates or []:
            certificates.extend(_crypto.load_certificates(data, name))
    except _crypto.CryptoError as exc:
        raise Pkcs12Error(str(exc)) from exc
    leaf = certificates[0]
    if not _crypto.same_public_key(leaf.public_key(), key):
        raise Pkcs12Error(
            f"the private key {key_name} does not match the certificate {certificate_name}"
            f" (public key {_crypto.public_key_fingerprint(key)[:16]}... in the key,"
            f" {_crypto.public_key_fingerprint(leaf.public_key())[:16]}... in the certificate)"
        )
    chain, seen = [], {_crypto.certificate_fingerprint(leaf)}
    for cert in certificates[1:]:
        fingerprint = _crypto.certificate_fingerprint(cert)
        if fingerprint not in seen:
            seen.add(fingerprint)
            chain.append(cert)
    warnings = []
    if chain and not any(_crypto.is_issued_by(leaf, cert) for cert in chain):
        warnings.append(
            f"no certificate of the chain issued {leaf.subject.rfc4514_string()!r}"
            f" (issuer {leaf.issuer.rfc4514_string()!r}); importers may not find its chain"
        )
    if friendly_name is None:
        friendly_name = _crypto.name_to_dict(leaf.subject).get("common_name")
    return Bundle(key, leaf, chain, friendly_name or None, expected), warnings


def open_bundle(data: bytes, passphrase: str) -> Bundle:
    """Decrypt an existing bundle. Raises :class:`Pkcs12Error` saying why it cannot."""
    secret = passphrase.encode("utf-8")
    encryption = detect_encryption(data)
    load = getattr(pkcs12, "load_pkcs12", None)
    try:
        if load is not None:  # cryptography >= 36
            loaded = load(data, secret)
            cert = loaded.cert.certificate if loaded.cert is not None else None
            name = loaded.cert.friendly_name if loaded.cert is not None else None
            chain = [extra.certificate for extra in loaded.additional_certs]
            return Bundle(
                loaded.key,
                cert,
                chain,
                name.decode("utf-8", "replace") if name else None,
                encryption,
            )
        key, cert, chain = pkcs12.load_key_and_certificates(data, secret)
    except (ValueError, TypeError) as exc:
        if encryption.scheme == "unknown":
            raise Pkcs12Error("the file is not a readable PKCS#12 bundle") from exc
        raise Pkcs12Error(
            "the passphrase does not open the bundle (another passphrase, or a damaged file)"
        ) from exc
    except Exception as exc:  # unsupported key types or algorithms in foreign files
        raise Pkcs12Error(f"the bundle cannot be read ({type(exc).__name__})") from exc
    return Bundle(key, cert, list(chain), None, encryption, friendly_name_known=False)


def _fingerprints(certs: list[Any]) -> list[str]:
    return sorted(_crypto.certificate_fingerprint(cert) for cert in certs)


def bundle_differences(current: Bundle, wanted: Bundle) -> list[str]:
    """Why ``current`` is not ``wanted``; empty when they are the same.

    The chain is compared as a set: its order carries no meaning for importers.
    """
    reasons = []
    if current.key is None:
        reasons.append("the bundle holds no private key")
    elif not _crypto.same_public_key(current.key, wanted.key):
        reasons.append("the bundle holds another private key")
    if current.certificate is None:
        reasons.append("the bundle holds no certificate")
    elif _crypto.certificate_fingerprint(current.certificate) != _crypto.certificate_fingerprint(
        wanted.certificate
    ):
        reasons.append(
            "the bundle holds another certificate (serial "
            f"{_crypto.serial_hex(current.certificate.serial_number)}, wanted "
            f"{_crypto.serial_hex(wanted.certificate.serial_number)})"
        )
    if _fingerprints(current.chain) != _fingerprints(wanted.chain):
        have = [cert.subject.rfc4514_string() for cert in current.chain]
        want = [cert.subject.rfc4514_string() for cert in wanted.chain]
        reasons.append(f"the chain differs: {have} in the bundle, wanted {want}")
    if current.friendly_name_known and current.friendly_name != wanted.friendly_name:
        reasons.append(
            f"friendly name is {current.friendly_name!r}, wanted {wanted.friendly_name!r}"
        )
    if current.encryption != wanted.encryption:
        if current.encryption.scheme == "unknown":
            reasons.append(
                f"the encryption of the bundle cannot be read, wanted {wanted.encryption.scheme}"
            )
        else:
            reasons.append(
                f"the bundle uses {current.encryption.scheme} encryption"
                f" ({current.encryption.key_cipher}, MAC {current.encryption.mac}),"
                f" wanted {wanted.encryption.scheme}"
            )
    return reasons


def build_bundle(wanted: Bundle, passphrase: str) -> bytes:
    """DER bytes of a new PKCS#12 bundle holding ``wanted``, protected by ``passphrase``.

    Raises :class:`Pkcs12Error` for an empty passphrase, or modern encryption on a
    cryptography older than 38.
    """
    if not passphrase:
        raise Pkcs12Error("the passphrase must not be empty")
    secret = passphrase.encode("utf-8")
    scheme = wanted.encryption.scheme
    if scheme not in ENCRYPTIONS:
        raise Pkcs12Error(f"encryption must be one of {ENCRYPTIONS}, not {scheme!r}")
    if not modern_supported():
        if scheme == "modern":
            raise Pkcs12Error(_modern_unsupported_message())
        # Before 38, cryptography's best PKCS#12 encryption is 3DES with a SHA-1 MAC.
        protection: Any = serialization.BestAvailableEncryption(secret)
    else:
        modern = scheme == "modern"
        protection = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(MODERN_KDF_ROUNDS if modern else LEGACY_KDF_ROUNDS)
            .key_cert_algorithm(
                pkcs12.PBES.PBESv2SHA256AndAES256CBC
                if modern
                else pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC
            )
            # SHA-1 only for encryption=legacy, which the user asks for old importers.
            .hmac_hash(hashes.SHA256() if modern else hashes.SHA1())  # noqa: S303
            .build(secret)
        )
    name = wanted.friendly_name.encode("utf-8") if wanted.friendly_name else None
    try:
        return pkcs12.serialize_key_and_certificates(
            name, wanted.key, wanted.certificate, wanted.chain or None, protection
        )
    except (ValueError, TypeError) as exc:
        raise Pkcs12Error(f"cannot write a PKCS#12 bundle: {exc}") from exc


def _modern_unsupported_message() -> str:
    return (
        "encryption=modern (AES-256 with PBKDF2-HMAC-SHA256 and an HMAC-SHA256 MAC) needs "
        f"Python cryptography >= 38 on the managed host, which has {_cryptography_version()}"
        " (Ubuntu 22.04 ships 3.4.8). Install a newer cryptography there, or set "
        "encryption=legacy if the importers of this bundle need the old 3DES encryption."
    )


# --------------------------------------------------------------------------- backend


@dataclass
class Assessment:
    """What :class:`Pkcs12Backend` decided: ``action`` is ``keep``, ``create`` or
    ``rewrite``; ``reason`` explains any action but ``keep``; ``current`` is the opened
    bundle (``None`` when missing or unreadable)."""

    action: str
    reason: str | None
    current: Bundle | None = None
    before: dict[str, Any] = field(default_factory=dict)

    @property
    def changes(self) -> bool:
        return self.action != "keep"


class Pkcs12Backend:
    """Decide whether the bundle file must be (re)written, and produce its bytes."""

    def __init__(self, wanted: Bundle, passphrase: str, force: bool = False, name: str = "bundle"):
        if not passphrase:
            raise Pkcs12Error(
                "passphrase must not be empty: whoever copies a bundle without one has the"
                " private key"
            )
        if wanted.encryption.scheme == "modern" and not modern_supported():
            raise Pkcs12Error(_modern_unsupported_message())
        self.wanted = wanted
        self.passphrase = passphrase
        self.force = force
        self.name = name

    def assess(self, existing: bytes | None) -> Assessment:
        """Compare the current file content (``None`` = no file) with the wanted bundle."""
        if existing is None:
            return Assessment("create", f"{self.name} does not exist", None, {"state": "absent"})
        try:
            current = open_bundle(existing, self.passphrase)
        except Pkcs12Error as exc:
            before = {"state": "unreadable", "encryption": detect_encryption(existing).facts()}
            return Assessment("rewrite", f"{self.name}: {exc}; rewritten", None, before)
        before = current.facts()
        if self.force:
            return Assessment("rewrite", "force=true", current, before)
        reasons = bundle_differences(current, self.wanted)
        if reasons:
            return Assessment("rewrite", "; ".join(reasons), current, before)
        return Assessment("keep", None, current, before)

    def produce(self) -> bytes:
        return build_bundle(self.wanted, self.passphrase)
