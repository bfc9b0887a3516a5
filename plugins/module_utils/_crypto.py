# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keys, CSRs and certificates for mtls.rollout, built on ``cryptography``.

Importing this module never fails: check :data:`HAS_CRYPTOGRAPHY` (and report
:data:`CRYPTOGRAPHY_IMPORT_ERROR`) before calling anything that needs cryptography.

Everything here works with cryptography 3.4 (Ubuntu 22.04), 38 (Debian 12) and newer; the
unit tests pass on 3.4.8, 38.0.4 and 50. Newer-only helpers (``not_valid_after_utc``,
``verify_directly_issued_by``) are used only when present.

Public API. Modules call :func:`require_cryptography` first; everything else raises
:class:`CryptoError` with a message naming the bad value.

Keys
    :class:`KeySpec` (``KeySpec.create(type, curve, size)``, ``KeySpec.of(key)``),
    :func:`generate_private_key`, :func:`load_private_key` -> :class:`LoadedKey`,
    :func:`serialize_private_key`, :func:`public_key_pem`, :func:`public_key_fingerprint`,
    :func:`same_public_key`, :class:`PrivateKeyBackend` (the ``private_key`` module's logic).
Names and SANs
    :class:`San`, :func:`parse_san`, :func:`parse_sans`, :func:`read_token_san`,
    :func:`certificate_sans`, :func:`token_strings`,
    :func:`sans_of`, :func:`format_san_diff`, :func:`build_name`, :func:`name_to_dict`,
    :func:`subject_argument_spec` (the subject options of a module).
Profiles
    :data:`PROFILES`, :func:`key_usage_for`, :func:`profile_of`.
CSRs
    :class:`CsrSpec`, :func:`build_csr`, :func:`load_csr`, :func:`csr_mismatches`,
    :func:`csr_facts`.
Certificates
    :func:`load_certificate`, :func:`load_certificates`, :func:`not_valid_before`,
    :func:`not_valid_after`, :func:`is_issued_by`, :func:`verify_signature`,
    :func:`chains_to`, :func:`certificate_fingerprint`, :func:`certificate_facts`,
    :func:`serial_hex`, :func:`parse_serial`, :func:`read_serial_hex`.
Renewal
    :func:`parse_duration`, :func:`format_duration`, :class:`RenewBefore`,
    :class:`Desired`, :func:`evaluate_certificate` -> :class:`Verdict`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
except ImportError:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None

# Aliases for readability: an EC, RSA or Ed25519 key object from cryptography.
PrivateKey = Any
PublicKey = Any


def require_cryptography(module: Any) -> None:
    """Fail the ``AnsibleModule`` with a clear message when cryptography is not installed."""
    if HAS_CRYPTOGRAPHY:
        return
    from ansible.module_utils.basic import missing_required_lib

    module.fail_json(
        msg=missing_required_lib("cryptography >= 3.4 (Debian/Ubuntu: python3-cryptography)"),
        exception=CRYPTOGRAPHY_IMPORT_ERROR,
    )


class CryptoError(Exception):
    """Invalid input or unusable material. The message is meant for the user as is."""


class KeyUnreadableError(CryptoError):
    """A private key exists but cannot be loaded (corrupt, unsupported or wrong passphrase)."""


# --------------------------------------------------------------------------- keys

KEY_TYPES = ("ec", "rsa", "ed25519")
# Supported curves, by NIST name -> (cryptography class name, key size).
EC_CURVES: dict[str, tuple[str, int]] = {
    "P-256": ("SECP256R1", 256),
    "P-384": ("SECP384R1", 384),
    "P-521": ("SECP521R1", 521),
}
_CURVE_BY_OPENSSL_NAME = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
RSA_SIZES = (2048, 3072, 4096)
KEY_FORMATS = ("pkcs8", "traditional")


@dataclass(frozen=True)
class KeySpec:
    """What a key is: ``type`` (ec, rsa, ed25519, or another name for foreign keys),
    ``curve`` (EC only, e.g. ``P-256``) and ``size`` in bits."""

    type: str
    curve: str | None = None
    size: int | None = None

    @classmethod
    def create(cls, key_type: str = "ec", curve: str | None = None, size: int | None = None):
        """Validate a wanted key. Defaults: EC P-256, RSA 2048."""
        if key_type not in KEY_TYPES:
            raise CryptoError(f"key type {key_type!r} is not supported; use one of {KEY_TYPES}")
        if key_type == "ec":
            curve = curve or "P-256"
            if curve not in EC_CURVES:
                raise CryptoError(f"curve {curve!r} is not supported; use one of {list(EC_CURVES)}")
            return cls("ec", curve, EC_CURVES[curve][1])
        if key_type == "rsa":
            size = int(size or 2048)
            if size not in RSA_SIZES:
                raise CryptoError(f"RSA size {size} is not supported; use one of {RSA_SIZES}")
            return cls("rsa", None, size)
        return cls("ed25519", None, 256)

    @classmethod
    def of(cls, key: Any) -> KeySpec:
        """Describe a loaded private or public key."""
        if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
            name = _CURVE_BY_OPENSSL_NAME.get(key.curve.name, key.curve.name)
            return cls("ec", name, key.curve.key_size)
        if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
            return cls("rsa", None, key.key_size)
        if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
            return cls("ed25519", None, 256)
        if isinstance(key, (ed448.Ed448PrivateKey, ed448.Ed448PublicKey)):
            return cls("ed448", None, 456)
        return cls(type(key).__name__.lower(), None, getattr(key, "key_size", None))

    def describe(self) -> str:
        """Human text, e.g. ``EC P-256``, ``RSA 3072``, ``Ed25519``."""
        if self.type == "ec":
            return f"EC {self.curve}"
        if self.type == "rsa":
            return f"RSA {self.size}"
        if self.type == "ed25519":
            return "Ed25519"
        return f"{self.type} {self.size or ''}".strip()


def generate_private_key(spec: KeySpec) -> PrivateKey:
    """Generate a new private key for ``spec`` (made with :meth:`KeySpec.create`)."""
    if spec.type == "ec":
        return ec.generate_private_key(getattr(ec, EC_CURVES[spec.curve or "P-256"][0])())
    if spec.type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=spec.size or 2048)
    if spec.type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise CryptoError(f"cannot generate keys of type {spec.type!r}")


@dataclass
class LoadedKey:
    """A private key read from bytes, with how it was stored."""

    key: PrivateKey
    format: str  # pkcs8, traditional or der
    encrypted: bool


def _pem_label(data: bytes) -> str | None:
    match = re.search(rb"-----BEGIN ([A-Z0-9 ]+)-----", data)
    return match.group(1).decode("ascii") if match else None


def load_private_key(data: bytes, passphrase: str | None = None, name: str = "key") -> LoadedKey:
    """Load a PEM (or DER) private key. ``name`` (usually the path) is used in messages.

    Raises :class:`KeyUnreadableError` for corrupt data, a wrong or missing passphrase, or an
    unsupported key. A passphrase given for an unencrypted key is not an error: the key is
    loaded (and ``encrypted`` is false).
    """
    secret = passphrase.encode("utf-8") if passphrase else None
    label = _pem_label(data)
    if label is None:
        if data.lstrip().startswith(b"-----"):
            raise KeyUnreadableError(f"{name} is not a valid PEM private key")
        loader, fmt = serialization.load_der_private_key, "der"
    else:
        loader = serialization.load_pem_private_key
        fmt = "pkcs8" if label in ("PRIVATE KEY", "ENCRYPTED PRIVATE KEY") else "traditional"
        if "PRIVATE KEY" not in label:
            raise KeyUnreadableError(f"{name} holds a {label!r} PEM block, not a private key")
    encrypted = label == "ENCRYPTED PRIVATE KEY" or (
        label is not None and b"Proc-Type: 4,ENCRYPTED" in data
    )
    try:
        try:
            key = loader(data, password=secret)
        except TypeError as exc:
            text = str(exc).lower()
            if secret is not None and "not encrypted" in text:
                key = loader(data, password=None)
            elif secret is None and "encrypted" in text:
                raise KeyUnreadableError(
                    f"{name} is encrypted; set the passphrase to read it"
                ) from exc
            else:
                raise
    except KeyUnreadableError:
        raise
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        if encrypted:
            raise KeyUnreadableError(
                f"cannot decrypt {name}: wrong passphrase or corrupt key"
            ) from exc
        raise KeyUnreadableError(f"{name} is not a readable private key ({exc})") from exc
    return LoadedKey(key=key, format=fmt, encrypted=encrypted)


def serialize_private_key(
    key: PrivateKey, fmt: str = "pkcs8", passphrase: str | None = None
) -> bytes:
    """PEM bytes of ``key`` in ``fmt`` (pkcs8 or traditional), encrypted when ``passphrase``."""
    if fmt not in KEY_FORMATS:
        raise CryptoError(f"key format {fmt!r} is not supported; use one of {KEY_FORMATS}")
    if fmt == "traditional" and isinstance(key, ed25519.Ed25519PrivateKey):
        raise CryptoError("Ed25519 keys can only be stored in the pkcs8 format")
    encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
    if passphrase:
        encryption = serialization.BestAvailableEncryption(passphrase.encode("utf-8"))
    private_format = (
        serialization.PrivateFormat.PKCS8
        if fmt == "pkcs8"
        else serialization.PrivateFormat.TraditionalOpenSSL
    )
    return key.private_bytes(serialization.Encoding.PEM, private_format, encryption)


def _public(key: Any) -> PublicKey:
    return key.public_key() if hasattr(key, "public_key") else key


def public_key_pem(key: Any) -> str:
    """SubjectPublicKeyInfo PEM of a private or public key."""
    return (
        _public(key)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def public_key_fingerprint(key: Any) -> str:
    """Lower-case hex SHA-256 of the DER SubjectPublicKeyInfo of a private or public key."""
    der = _public(key).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def same_public_key(a: Any, b: Any) -> bool:
    """Whether two keys (private or public, any mix) have the same public key."""
    return public_key_fingerprint(a) == public_key_fingerprint(b)


def key_facts(key: Any, fmt: str | None = None, encrypted: bool | None = None) -> dict[str, Any]:
    """Parsed, non-secret facts about a key, for results and diffs."""
    spec = KeySpec.of(key)
    facts: dict[str, Any] = {
        "type": spec.type,
        "size": spec.size,
        "curve": spec.curve,
        "fingerprint": public_key_fingerprint(key),
    }
    if fmt is not None:
        facts["format"] = fmt
    if encrypted is not None:
        facts["encrypted"] = encrypted
    return facts


REGENERATE_CHOICES = ("never", "fail", "on_mismatch", "always")


@dataclass
class KeyAssessment:
    """What :class:`PrivateKeyBackend` decided for an existing (or missing) key file.

    ``action`` is ``keep``, ``create``, ``regenerate`` or ``convert`` (same key, new
    encoding); ``reason`` explains any action other than ``keep``; ``current`` is the loaded
    key (``None`` when missing or unreadable).
    """

    action: str
    reason: str | None
    current: LoadedKey | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        return self.action != "keep"


class PrivateKeyBackend:
    """Decide and produce a private key file; the module only reads and writes files.

    ``regenerate``: ``never`` keeps any readable key; ``fail`` fails when the key does not
    match ``spec``; ``on_mismatch`` makes a new key when type, curve or size differ and
    re-encodes the same key when only the format or passphrase differ; ``always`` makes a
    new key every time. An unreadable key file fails, unless ``regenerate=always`` or
    ``replace_unreadable`` (with ``on_mismatch``).
    """

    def __init__(
        self,
        spec: KeySpec,
        fmt: str = "pkcs8",
        passphrase: str | None = None,
        regenerate: str = "on_mismatch",
        replace_unreadable: bool = False,
        name: str = "key",
    ) -> None:
        if regenerate not in REGENERATE_CHOICES:
            raise CryptoError(f"regenerate must be one of {REGENERATE_CHOICES}, not {regenerate!r}")
        if fmt not in KEY_FORMATS:
            raise CryptoError(f"format must be one of {KEY_FORMATS}, not {fmt!r}")
        if fmt == "traditional" and spec.type == "ed25519":
            raise CryptoError("Ed25519 keys can only be stored in the pkcs8 format")
        self.spec = spec
        self.format = fmt
        self.passphrase = passphrase or None
        self.regenerate = regenerate
        self.replace_unreadable = replace_unreadable
        self.name = name

    def assess(self, existing: bytes | None) -> KeyAssessment:
        """Decide what to do with the current file content (``None`` = no file)."""
        if existing is None:
            return KeyAssessment("create", f"{self.name} does not exist")
        if self.regenerate == "always":
            return KeyAssessment("regenerate", "regenerate=always")
        try:
            loaded = load_private_key(existing, self.passphrase, self.name)
        except KeyUnreadableError as exc:
            if self.regenerate == "on_mismatch" and self.replace_unreadable:
                return KeyAssessment("regenerate", f"{exc}; replaced (replace_unreadable=true)")
            hint = ""
            if self.regenerate == "on_mismatch":
                hint = " Set replace_unreadable=true to replace it with a new key."
            raise CryptoError(f"{exc}. The file was left untouched.{hint}") from exc
        current = KeySpec.of(loaded.key)
        if current != self.spec:
            what = f"key is {current.describe()}, wanted {self.spec.describe()}"
            if self.regenerate == "never":
                return KeyAssessment("keep", None, loaded, [f"{what}; kept (regenerate=never)"])
            if self.regenerate == "fail":
                raise CryptoError(f"{self.name}: {what} (regenerate=fail)")
            return KeyAssessment("regenerate", what, loaded)
        encoding = self._encoding_difference(loaded)
        if encoding:
            if self.regenerate == "never":
                return KeyAssessment("keep", None, loaded, [f"{encoding}; kept (regenerate=never)"])
            if self.regenerate == "fail":
                raise CryptoError(f"{self.name}: {encoding} (regenerate=fail)")
            return KeyAssessment("convert", encoding, loaded)
        return KeyAssessment("keep", None, loaded)

    def _encoding_difference(self, loaded: LoadedKey) -> str | None:
        if loaded.format != self.format:
            return f"key is stored as {loaded.format}, wanted {self.format}"
        if self.passphrase and not loaded.encrypted:
            return "key is not encrypted, but a passphrase is set"
        if not self.passphrase and loaded.encrypted:  # pragma: no cover - cannot load then
            return "key is encrypted, but no passphrase is set"
        return None

    def produce(self, assessment: KeyAssessment) -> tuple[PrivateKey, bytes]:
        """The key to store and its PEM bytes (a new key unless the action is ``convert``)."""
        if assessment.action == "convert" and assessment.current is not None:
            key = assessment.current.key
        else:
            key = generate_private_key(self.spec)
        return key, serialize_private_key(key, self.format, self.passphrase)


# ------------------------------------------------------------------ names and SANs

SAN_KINDS = ("DNS", "IP", "email", "URI")
_SAN_PREFIXES = {"dns": "DNS", "ip": "IP", "email": "email", "uri": "URI"}
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_URI_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


@dataclass(frozen=True, order=True)
class San:
    """One subject alternative name; ``str()`` gives ``DNS:web.example.com`` etc."""

    kind: str
    value: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"

    def general_name(self) -> x509.GeneralName:
        """The ``cryptography`` GeneralName for this SAN."""
        if self.kind == "DNS":
            return x509.DNSName(self.value)
        if self.kind == "IP":
            return x509.IPAddress(ipaddress.ip_address(self.value))
        if self.kind == "email":
            return x509.RFC822Name(self.value)
        if self.kind == "URI":
            return x509.UniformResourceIdentifier(self.value)
        raise CryptoError(f"SAN {self} cannot be requested")


def _check_dns_name(value: str, original: str, allow_wildcard: bool = True) -> str:
    name = value.strip().lower()
    if not name:
        raise CryptoError(f"SAN {original!r}: the DNS name is empty")
    if not name.isascii():
        raise CryptoError(
            f"SAN {original!r}: use the ASCII (punycode, xn--) form of internationalised names"
        )
    if len(name) > 253:
        raise CryptoError(f"SAN {original!r}: the DNS name is longer than 253 characters")
    labels = name.split(".")
    for position, label in enumerate(labels):
        if "*" in label:
            if not allow_wildcard:
                raise CryptoError(f"SAN {original!r}: a wildcard is not allowed here")
            if label != "*" or position != 0:
                raise CryptoError(
                    f"SAN {original!r}: a wildcard must be the whole left-most label, "
                    "as in *.example.com"
                )
            if len(labels) < 3:
                raise CryptoError(
                    f"SAN {original!r}: a wildcard needs at least two labels after it, "
                    "as in *.example.com"
                )
            continue
        if not label:
            raise CryptoError(f"SAN {original!r}: the DNS name has an empty label")
        if not _LABEL.match(label):
            raise CryptoError(
                f"SAN {original!r}: label {label!r} may only hold letters, digits and inner "
                "hyphens (at most 63 characters)"
            )
    return name


def parse_san(text: Any) -> San:
    """Parse and validate ``TYPE:value`` (DNS, IP, email, URI; type case-insensitive).

    Values are normalised: DNS names lower-cased, IP addresses in canonical form, the domain
    of an email lower-cased. Raises :class:`CryptoError` naming the offending value.
    """
    if not isinstance(text, str):
        raise CryptoError(f"SAN {text!r} must be a string like DNS:host.example.com")
    prefix, sep, value = text.partition(":")
    kind = _SAN_PREFIXES.get(prefix.strip().lower()) if sep else None
    if kind is None:
        raise CryptoError(
            f"SAN {text!r} needs a type prefix: DNS:, IP:, email: or URI: "
            "(for example DNS:web.example.com)"
        )
    value = value.strip()
    if kind == "DNS":
        return San("DNS", _check_dns_name(value, text))
    if kind == "IP":
        address = _ip_address(value, text)
        if address is None:
            raise CryptoError(f"SAN {text!r} is not a valid IPv4 or IPv6 address")
        return San("IP", address)
    if kind == "email":
        local, at, domain = value.rpartition("@")
        if not at or not local or not domain or any(c.isspace() for c in value):
            raise CryptoError(f"SAN {text!r} is not a valid email address (local@domain)")
        return San("email", f"{local}@{_check_dns_name(domain, text, allow_wildcard=False)}")
    if not value or not _URI_SCHEME.match(value) or any(c.isspace() for c in value):
        raise CryptoError(
            f"SAN {text!r} is not a valid URI: it needs a scheme and no spaces, "
            "as in URI:spiffe://example.org/web"
        )
    if not value.split(":", 1)[1]:
        raise CryptoError(f"SAN {text!r} is not a valid URI: nothing follows the scheme")
    if not value.isascii():
        # step-ca would percent-encode it, so the certificate would never match.
        raise CryptoError(f"SAN {text!r} is not a valid URI: percent-encode non-ASCII characters")
    return San("URI", _lower_scheme(value))


def _lower_scheme(uri: str) -> str:
    """``uri`` with its scheme in lower case, as step-ca (Go's url.Parse) writes it."""
    scheme, rest = uri.split(":", 1)
    return f"{scheme.lower()}:{rest}"


def parse_sans(values: list[Any] | None) -> tuple[San, ...]:
    """Parse a list of SAN strings; returns them sorted, without duplicates."""
    return tuple(sorted({parse_san(value) for value in values or []}))


def _ip_address(value: str, original: str) -> str | None:
    """The canonical text of an IP address, or ``None`` when ``value`` is not one.

    IPv6 is compressed and lower-case, an IPv4-mapped IPv6 address becomes IPv4 (that is
    how it is stored in a certificate). A scoped IPv6 address (``fe80::1%eth0``) is
    refused: the zone cannot be put in a certificate, so it would never compare equal.
    """
    if "%" in value:
        head = value.split("%", 1)[0]
        try:
            ipaddress.IPv6Address(head)
        except ValueError:
            return None
        raise CryptoError(
            f"SAN {original!r}: a scoped IPv6 address (with a %zone) cannot be put in a"
            f" certificate; give it without the zone, as {head}"
        )
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def read_token_san(value: str, *, strict: bool = True) -> San:
    """A plain SAN string read the way step-ca reads a token's ``sans`` (``SplitSANs``).

    An IP address, else a URI (a ``scheme:`` prefix), else an e-mail address (has an
    ``@``), else a DNS name; normalised like :func:`parse_san`. With ``strict`` the value
    is validated like a ``TYPE:value`` SAN (surrounding blanks dropped); without it (a
    common name that step-ca copies into the SANs, such as ``John Doe``) a DNS name is
    only lower-cased, and must be ASCII to fit a certificate.
    """
    if not isinstance(value, str):
        raise CryptoError(f"SAN {value!r} must be a string")
    text = value.strip() if strict else value
    address = _ip_address(text, value)
    if address is not None:
        return San("IP", address)
    if _URI_SCHEME.match(text):
        if strict or any(c.isspace() for c in text):
            return parse_san(f"URI:{text}")
        return San("URI", _lower_scheme(text))
    if "@" in text:
        if strict:
            return parse_san(f"email:{text}")
        local, _at, domain = text.rpartition("@")
        return San("email", f"{local}@{domain.lower()}")
    if strict:
        return parse_san(f"DNS:{text}")
    if not text or not text.isascii() or not text.isprintable():
        raise CryptoError(
            f"common name {value!r} cannot be a SAN (step-ca copies the common name into"
            " the SANs when none are given, and a certificate's DNS name must be printable"
            " ASCII); give subject_alt_names"
        )
    return San("DNS", text.lower())


def certificate_sans(common_name: str | None, requested: Iterable[San] | None) -> tuple[San, ...]:
    """The SANs step-ca puts in a certificate signed for ``common_name`` and ``requested``.

    This is the one answer to "which names does this item authorise", used to mint the
    signing token (:mod:`_stepca`), by :func:`evaluate_certificate` (``certificate_info``)
    and by the certificate role's check of an issued certificate.

    * ``requested`` not empty: exactly those SANs (sorted, without duplicates).
    * ``requested`` empty or ``None``: the common name alone, as step-ca copies it into the
      SANs (read with :func:`read_token_san`, not strict): ``web.example.com`` gives
      ``DNS:web.example.com``, ``10.0.0.5`` gives ``IP:10.0.0.5``, ``John Doe`` gives
      ``DNS:john doe``. Without a common name, no SAN.
    """
    sans = tuple(sorted(set(requested or ())))
    if sans:
        return sans
    if common_name:
        return (read_token_san(common_name, strict=False),)
    return ()


def token_strings(sans: Iterable[San]) -> list[str]:
    """The plain strings a step-ca token carries for ``sans``, in order.

    A token has no SAN types: step-ca types each string by its form (see
    :func:`read_token_san`). A SAN whose value step-ca would read as another type (such
    as ``DNS:10.0.0.5``, which it would issue as an IP address) is refused.
    """
    values = []
    for san in sans:
        read = read_token_san(san.value, strict=False) if san.kind in SAN_KINDS else None
        if read != san:
            as_what = f"as {read}" if read is not None else "at all"
            raise CryptoError(
                f"SAN {san} cannot be requested from step-ca: its tokens carry SANs as plain"
                f" strings, and step-ca would read {san.value!r} {as_what}"
            )
        values.append(san.value)
    return values


def _san_of_general_name(name: x509.GeneralName) -> San:
    if isinstance(name, x509.DNSName):
        return San("DNS", name.value.lower())
    if isinstance(name, x509.IPAddress):
        return San("IP", str(name.value))
    if isinstance(name, x509.RFC822Name):
        local, _at, domain = name.value.rpartition("@")
        return San("email", f"{local}@{domain.lower()}" if local else name.value)
    if isinstance(name, x509.UniformResourceIdentifier):
        return San("URI", _lower_scheme(name.value) if ":" in name.value else name.value)
    return San(type(name).__name__, str(getattr(name, "value", name)))


def sans_of(extensions: x509.Extensions) -> tuple[San, ...]:
    """The SANs of a certificate's or CSR's extensions (sorted, no validation)."""
    try:
        ext = extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    return tuple(sorted({_san_of_general_name(name) for name in ext.value}))


def format_san_diff(current: tuple[San, ...], desired: tuple[San, ...]) -> str | None:
    """``+DNS:a, -IP:1.2.3.4`` for SANs to add (+) and remove (-), or ``None`` if equal."""
    added = sorted(set(desired) - set(current))
    removed = sorted(set(current) - set(desired))
    if not added and not removed:
        return None
    return ", ".join([f"+{san}" for san in added] + [f"-{san}" for san in removed])


# Subject fields (option names) -> attribute name in cryptography's NameOID.
SUBJECT_FIELDS: dict[str, str] = {
    "common_name": "COMMON_NAME",
    "organization_name": "ORGANIZATION_NAME",
    "organizational_unit_name": "ORGANIZATIONAL_UNIT_NAME",
    "country_name": "COUNTRY_NAME",
    "state_or_province_name": "STATE_OR_PROVINCE_NAME",
    "locality_name": "LOCALITY_NAME",
    "email_address": "EMAIL_ADDRESS",
}
# Short aliases of the subject options of the csr and certificate_info modules.
_SUBJECT_OPTION_ALIASES: dict[str, list[str]] = {
    "common_name": ["CN"],
    "organization_name": ["O"],
    "organizational_unit_name": ["OU"],
    "country_name": ["C"],
    "state_or_province_name": ["ST"],
    "locality_name": ["L"],
    "email_address": [],
}


def subject_argument_spec() -> dict[str, dict[str, Any]]:
    """Argument spec entries for the subject options: one ``str`` per ``SUBJECT_FIELDS`` key."""
    spec: dict[str, dict[str, Any]] = {}
    for name in SUBJECT_FIELDS:
        aliases = _SUBJECT_OPTION_ALIASES[name]
        spec[name] = {"type": "str", **({"aliases": list(aliases)} if aliases else {})}
    return spec


# The order in which subject fields are written (most general first, as usual).
_SUBJECT_ORDER = (
    "country_name",
    "state_or_province_name",
    "locality_name",
    "organization_name",
    "organizational_unit_name",
    "common_name",
    "email_address",
)


def build_name(fields: dict[str, Any]) -> x509.Name:
    """An X.509 Name from ``SUBJECT_FIELDS`` keys; empty or ``None`` values are left out."""
    unknown = set(fields) - set(SUBJECT_FIELDS)
    if unknown:
        raise CryptoError(f"unknown subject field(s): {', '.join(sorted(unknown))}")
    attributes = []
    for key in _SUBJECT_ORDER:
        value = fields.get(key)
        if value is None or str(value).strip() == "":
            continue
        value = str(value).strip()
        if key == "country_name" and not re.fullmatch(r"[A-Za-z]{2}", value):
            raise CryptoError(f"country_name {value!r} must be a two-letter code such as DE")
        if key == "common_name" and len(value) > 64:
            raise CryptoError(f"common_name {value!r} is longer than 64 characters")
        try:
            attributes.append(x509.NameAttribute(getattr(NameOID, SUBJECT_FIELDS[key]), value))
        except ValueError as exc:
            raise CryptoError(f"{key} {value!r} is not valid: {exc}") from exc
    return x509.Name(attributes)


def name_to_dict(name: x509.Name) -> dict[str, str]:
    """Subject fields by ``SUBJECT_FIELDS`` key (other attributes by their dotted OID)."""
    by_oid = {getattr(NameOID, oid): key for key, oid in SUBJECT_FIELDS.items()}
    result: dict[str, str] = {}
    for attribute in name:
        key = by_oid.get(attribute.oid, attribute.oid.dotted_string)
        value = attribute.value if isinstance(attribute.value, str) else attribute.value.hex()
        result[key] = f"{result[key]}, {value}" if key in result else value
    return result


# ------------------------------------------------------------------------ profiles

# TLS profiles -> the extended key usages they request (by name).
PROFILES: dict[str, tuple[str, ...]] = {
    "client": ("clientAuth",),
    "server": ("serverAuth",),
    "both": ("serverAuth", "clientAuth"),
}
# Extended key usage names -> attribute name in cryptography's ExtendedKeyUsageOID.
_EKU_OIDS = {
    "serverAuth": "SERVER_AUTH",
    "clientAuth": "CLIENT_AUTH",
    "codeSigning": "CODE_SIGNING",
    "emailProtection": "EMAIL_PROTECTION",
    "timeStamping": "TIME_STAMPING",
    "OCSPSigning": "OCSP_SIGNING",
}


def _eku_oid(name: str) -> x509.ObjectIdentifier:
    return getattr(ExtendedKeyUsageOID, _EKU_OIDS[name])


def _check_profile(profile: str) -> None:
    if profile not in PROFILES:
        raise CryptoError(f"profile {profile!r} is not one of {list(PROFILES)}")


def key_usage_for(key: Any, profile: str) -> x509.KeyUsage:
    """Key usage for a TLS ``profile``: digitalSignature, plus keyEncipherment for RSA."""
    _check_profile(profile)
    is_rsa = isinstance(_public(key), rsa.RSAPublicKey)
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=is_rsa,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def eku_names(extensions: x509.Extensions) -> list[str]:
    """Extended key usages by name (``serverAuth``, ``clientAuth``, or dotted OIDs)."""
    try:
        ext = extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return []
    names = {_eku_oid(name): name for name in _EKU_OIDS}
    return [names.get(oid, oid.dotted_string) for oid in ext.value]


def profile_of(extensions: x509.Extensions) -> str:
    """``client``, ``server``, ``both``, ``none`` (no EKU extension) or ``other``."""
    names = set(eku_names(extensions))
    if not names:
        return "none"
    if names == {"serverAuth"}:
        return "server"
    if names == {"clientAuth"}:
        return "client"
    if names == {"serverAuth", "clientAuth"}:
        return "both"
    return "other"


def identity_differences(
    cert: x509.Certificate, common_name: str, expected_sans: tuple[San, ...], profile: str
) -> list[str]:
    """How ``cert``'s subject, SANs and extended key usage differ from an item's (its common
    name alone as subject, exactly ``expected_sans``, the profile's usage alone); empty when
    they don't. The one rule for the role's install step and the revoke playbook's check of a
    certificate a host reports."""
    reasons = []
    if name_to_dict(cert.subject) != {"common_name": common_name}:
        reasons.append(f"subject is {cert.subject.rfc4514_string()!r}, wanted CN={common_name}")
    san_diff = format_san_diff(sans_of(cert.extensions), expected_sans)
    if san_diff:
        reasons.append(f"SANs differ from the item: {san_diff}")
    if profile_of(cert.extensions) != profile:
        ekus = ", ".join(eku_names(cert.extensions)) or "none"
        reasons.append(
            f"extended key usage is {ekus}, wanted {profile} ({', '.join(PROFILES[profile])} only)"
        )
    return reasons


# ---------------------------------------------------------------------------- CSRs


@dataclass(frozen=True)
class CsrSpec:
    """A wanted CSR: subject, SANs and TLS profile (key usage and EKU follow the profile)."""

    subject: x509.Name
    sans: tuple[San, ...] = ()
    profile: str = "server"

    @classmethod
    def create(
        cls,
        subject: dict[str, Any],
        subject_alt_names: list[Any] | None = None,
        profile: str = "server",
    ) -> CsrSpec:
        """Validate subject fields, SAN strings and the profile."""
        _check_profile(profile)
        name = build_name(subject)
        sans = parse_sans(subject_alt_names)
        if not len(name) and not sans:
            raise CryptoError("a CSR needs a subject (e.g. common_name) or subject_alt_names")
        return cls(name, sans, profile)


def _signing_hash(key: Any) -> hashes.HashAlgorithm | None:
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        return None
    return hashes.SHA256()


def build_csr(key: PrivateKey, spec: CsrSpec) -> x509.CertificateSigningRequest:
    """A signed CSR for ``key`` with the subject, SANs, key usage and EKU of ``spec``."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(spec.subject)
    if spec.sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([san.general_name() for san in spec.sans]),
            critical=not len(spec.subject),
        )
    builder = builder.add_extension(key_usage_for(key, spec.profile), critical=True)
    builder = builder.add_extension(
        x509.ExtendedKeyUsage([_eku_oid(name) for name in PROFILES[spec.profile]]), critical=False
    )
    try:
        return builder.sign(key, _signing_hash(key))
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CryptoError(f"cannot sign the CSR: {exc}") from exc


def csr_pem(csr: x509.CertificateSigningRequest) -> str:
    """PEM text of a CSR."""
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def load_csr(data: bytes, name: str = "CSR") -> x509.CertificateSigningRequest:
    """Load a PEM (or DER) CSR; raises :class:`CryptoError` when unreadable."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_csr(data)
        return x509.load_der_x509_csr(data)
    except ValueError as exc:
        raise CryptoError(f"{name} is not a readable CSR ({exc})") from exc


def _key_usage_of(extensions: x509.Extensions) -> x509.KeyUsage | None:
    try:
        return extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def csr_mismatches(
    csr: x509.CertificateSigningRequest, key: PrivateKey, spec: CsrSpec
) -> list[str]:
    """Why ``csr`` is not what ``spec`` asks for with ``key``; empty when it matches."""
    reasons = []
    if not csr.is_signature_valid:
        reasons.append("CSR signature is not valid")
    if not same_public_key(csr.public_key(), key):
        reasons.append("CSR does not match the private key")
    if csr.subject != spec.subject:
        reasons.append(
            f"subject differs: {csr.subject.rfc4514_string()!r}, "
            f"wanted {spec.subject.rfc4514_string()!r}"
        )
    san_diff = format_san_diff(sans_of(csr.extensions), spec.sans)
    if san_diff:
        reasons.append(f"SANs differ: {san_diff}")
    if _key_usage_of(csr.extensions) != key_usage_for(key, spec.profile):
        reasons.append("key usage differs")
    current_profile = profile_of(csr.extensions)
    if current_profile != spec.profile:
        reasons.append(f"profile differs: {current_profile}, wanted {spec.profile}")
    return reasons


def csr_facts(csr: x509.CertificateSigningRequest) -> dict[str, Any]:
    """Parsed facts of a CSR for results and diffs (no PEM)."""
    return {
        "subject": name_to_dict(csr.subject),
        "subject_alt_names": [str(san) for san in sans_of(csr.extensions)],
        "extended_key_usage": eku_names(csr.extensions),
        "profile": profile_of(csr.extensions),
        "public_key_fingerprint": public_key_fingerprint(csr.public_key()),
    }


# -------------------------------------------------------------------- certificates

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\s.+?\s-----END CERTIFICATE-----", re.DOTALL)


def load_certificates(data: bytes, name: str = "bundle") -> list[x509.Certificate]:
    """Every certificate of a PEM bundle (or one DER certificate), in file order.

    Raises :class:`CryptoError` when there is none or one is unreadable.
    """
    blocks = _PEM_CERT.findall(data)
    try:
        if not blocks:
            if b"-----BEGIN" in data or not data.strip():
                raise CryptoError(f"{name} holds no PEM certificate")
            return [x509.load_der_x509_certificate(data)]
        return [x509.load_pem_x509_certificate(block) for block in blocks]
    except ValueError as exc:
        raise CryptoError(f"{name} holds an unreadable certificate ({exc})") from exc


def load_certificate(data: bytes, name: str = "certificate") -> x509.Certificate:
    """The first certificate of ``data`` (PEM or DER)."""
    return load_certificates(data, name)[0]


def certificates_pem(certs: Iterable[x509.Certificate]) -> str:
    """PEM of ``certs``, in order (public data; nothing else of the file they came from)."""
    return "".join(cert.public_bytes(serialization.Encoding.PEM).decode("ascii") for cert in certs)


def not_valid_before(cert: x509.Certificate) -> datetime:
    """Start of validity as an aware UTC datetime (on any cryptography version)."""
    value = getattr(cert, "not_valid_before_utc", None)
    return value if value is not None else cert.not_valid_before.replace(tzinfo=timezone.utc)


def not_valid_after(cert: x509.Certificate) -> datetime:
    """End of validity as an aware UTC datetime (on any cryptography version)."""
    value = getattr(cert, "not_valid_after_utc", None)
    return value if value is not None else cert.not_valid_after.replace(tzinfo=timezone.utc)


def is_issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s name and key signed ``cert`` (signature verified)."""
    if cert.issuer != issuer.subject:
        return False
    verify = getattr(cert, "verify_directly_issued_by", None)
    if verify is not None:  # cryptography >= 40 (also handles RSA-PSS)
        try:
            verify(issuer)
        except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
            return False
        return True
    return verify_signature(cert, issuer.public_key())


def verify_signature(cert: x509.Certificate, public: PublicKey) -> bool:
    """Whether ``public`` verifies the signature of ``cert`` (PKCS#1 v1.5, ECDSA, EdDSA).

    Works on cryptography 38; :func:`is_issued_by` prefers the library's own check when the
    installed version has one.
    """
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(
                cert.signature,
                cert.tbs_certificate_bytes,
                padding.PKCS1v15(),
                cert.signature_hash_algorithm,
            )
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(
                cert.signature,
                cert.tbs_certificate_bytes,
                ec.ECDSA(cert.signature_hash_algorithm),
            )
        elif isinstance(public, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            public.verify(cert.signature, cert.tbs_certificate_bytes)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """Lower-case hex SHA-256 of the certificate's DER encoding (step's root fingerprint)."""
    return cert.fingerprint(hashes.SHA256()).hex()


def chains_to(
    cert: x509.Certificate,
    anchors: list[x509.Certificate],
    intermediates: list[x509.Certificate] | None = None,
    now: datetime | None = None,
    max_depth: int = 8,
) -> tuple[bool, str]:
    """Whether ``cert`` chains, through ``intermediates``, to one of ``anchors``.

    Names and signatures are checked along the path, and every intermediate must be valid at
    ``now``. Returns ``(ok, message)`` where the message says why not, or which anchor.
    """
    if not anchors:
        return False, "the trust bundle holds no certificate"
    now = now or datetime.now(timezone.utc)
    anchor_prints = {certificate_fingerprint(anchor) for anchor in anchors}
    pool = list(intermediates or [])
    current, seen = cert, set()
    for _depth in range(max_depth):
        if certificate_fingerprint(current) in anchor_prints:
            return True, f"is trust anchor {current.subject.rfc4514_string()!r}"
        for anchor in anchors:
            if is_issued_by(current, anchor):
                return True, f"chains to {anchor.subject.rfc4514_string()!r}"
        seen.add(certificate_fingerprint(current))
        issuers = [
            candidate
            for candidate in pool
            if certificate_fingerprint(candidate) not in seen and is_issued_by(current, candidate)
        ]
        if not issuers:
            return False, (
                f"no issuer for {current.subject.rfc4514_string()!r} "
                f"(issuer {current.issuer.rfc4514_string()!r}) in the chain or trust bundle"
            )
        current = issuers[0]
        if not not_valid_before(current) <= now <= not_valid_after(current):
            return False, f"intermediate {current.subject.rfc4514_string()!r} is not valid now"
    return False, "the chain is longer than allowed"


# RFC 5280 section 4.1.2.2: a serial number is a positive integer of at most 20 octets.
_MAX_SERIAL = 1 << (20 * 8)
_SERIAL_DECIMAL = re.compile(r"^[0-9]+$")
_SERIAL_HEX = re.compile(r"^[0-9a-f]+$")
_SERIAL_COLON_HEX = re.compile(r"^[0-9a-f]{2}(?::[0-9a-f]{2})+$")


def serial_hex(serial: int) -> str:
    """A serial as NGINX's ``$ssl_client_serial`` shows it: upper-case hex, even digit count.

    That is OpenSSL's ``i2a_ASN1_INTEGER``: two hex digits per octet, so ``0xABC`` is
    ``0ABC``. Every module and role shows serials in this form.
    """
    text = f"{serial:X}"
    return text if len(text) % 2 == 0 else "0" + text


def parse_serial(value: Any) -> int:
    """A certificate serial number from the unambiguous forms people copy it in.

    * an integer, or a string of decimal digits: decimal (what step-ca and
      ``step certificate inspect`` print, and ``step_ca_sign``'s ``serial``);
    * hex in groups of exactly two digits joined by colons, any case (``5a:3f:07``, as
      ``openssl x509 -text`` prints it);
    * hex with a ``0x`` prefix (``0x5A3F07``);
    * plain hex with at least one letter a-f (NGINX's ``$ssl_client_serial``, ``serial_hex``).

    A plain string of digits is always decimal; write hex made only of the digits 0-9
    with colons or a ``0x`` prefix. Colon groups of one or three digits are refused, since
    ``5:f2`` could mean ``05F2`` or ``5F2`` typed with a digit missing. Raises
    :class:`CryptoError`.
    """
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        text = value.strip().lower()
        if text.startswith("0x") and _SERIAL_HEX.match(text[2:]):
            number = int(text[2:], 16)
        elif _SERIAL_COLON_HEX.match(text):
            number = int(text.replace(":", ""), 16)
        elif _SERIAL_DECIMAL.match(text):
            number = int(text, 10)
        elif _SERIAL_HEX.match(text):
            number = int(text, 16)
    if number is None:
        raise CryptoError(
            "serial must be a certificate serial number in decimal, in hex with a 0x prefix"
            " or the letters a-f, or in two-digit hex groups with colons (de:7a:05:f2),"
            f" got {value!r}"
        )
    if not 0 < number < _MAX_SERIAL:
        raise CryptoError(
            f"serial must be a positive number of at most 20 octets (RFC 5280), got {number}"
        )
    return number


def read_serial_hex(value: Any) -> int:
    """A serial written by :func:`serial_hex` (NGINX's ``$ssl_client_serial``): its inverse.

    For files and arguments that hold serials in the collection's one written form, where
    ``"1234"`` is hex (unlike :func:`parse_serial`, which reads a string of digits as
    decimal). Only exactly that form is accepted: upper-case hex, an even number of digits,
    no leading zero octet, no prefix or separators. Raises :class:`CryptoError`.
    """
    if isinstance(value, str):
        text = value.strip()
        if text and not text.lower().startswith("0x") and _SERIAL_HEX.match(text.lower()):
            number = parse_serial("0x" + text)
            if serial_hex(number) == text:
                return number
    raise CryptoError(
        "serial must be written as NGINX shows $ssl_client_serial: upper-case hex with an even"
        f' number of digits and no leading zero octet, in quotes (e.g. "04D2"), got {value!r}'
    )


def certificate_facts(cert: x509.Certificate, now: datetime | None = None) -> dict[str, Any]:
    """Parsed facts of a certificate for results and diffs (no PEM)."""
    now = now or datetime.now(timezone.utc)
    start, end = not_valid_before(cert), not_valid_after(cert)
    lifetime = (end - start).total_seconds()
    remaining = (end - now).total_seconds()
    subject = name_to_dict(cert.subject)
    return {
        "subject": subject,
        "subject_string": cert.subject.rfc4514_string(),
        "common_name": subject.get("common_name"),
        "subject_alt_names": [str(san) for san in sans_of(cert.extensions)],
        "issuer": name_to_dict(cert.issuer),
        "issuer_string": cert.issuer.rfc4514_string(),
        "serial": serial_hex(cert.serial_number),
        "serial_number": cert.serial_number,
        "not_before": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "not_after": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lifetime_seconds": int(lifetime),
        "remaining_seconds": int(remaining),
        "remaining_fraction": round(max(remaining, 0) / lifetime, 4) if lifetime > 0 else 0.0,
        "extended_key_usage": eku_names(cert.extensions),
        "profile": profile_of(cert.extensions),
        "key_type": KeySpec.of(cert.public_key()).type,
        "key_size": KeySpec.of(cert.public_key()).size,
        "public_key_fingerprint": public_key_fingerprint(cert.public_key()),
        "fingerprint": certificate_fingerprint(cert),
    }


# ------------------------------------------------------------------------- renewal

# Durations: one parser, two grammars. Ours (renew_before) takes w, d, h, m, s, any case,
# with blanks between terms. Go's (time.ParseDuration, what step-ca takes for notAfter and
# its provisioner claims) takes h, m, s, ms, us, ns, case-sensitive, and a sign.
_DURATION_UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_GO_DURATION_UNITS = {
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign
    "\u03bcs": 1e-6,  # Greek mu
    "ns": 1e-9,
}
_DURATION_TERM = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([a-z\u00b5\u03bc]+)")


def parse_duration(text: Any, *, go: bool = False) -> timedelta:
    """A duration such as ``8h``, ``7d``, ``1h30m``, ``90s`` or ``2w``.

    With ``go``, Go's ``time.ParseDuration`` grammar instead, as step-ca takes it: ``24h``,
    ``1h30m``, ``1.5h``, ``300ms``, ``-5m``, ``0``; no days, no blanks, case-sensitive.
    Raises :class:`CryptoError`.
    """
    raw = text if isinstance(text, str) else ("" if go else str(text))
    compact = raw.strip() if go else raw.strip().lower().replace(" ", "")
    sign = 1.0
    if go and compact[:1] in ("+", "-"):
        sign = -1.0 if compact[0] == "-" else 1.0
        compact = compact[1:]
    if go and compact == "0":
        return timedelta(0)
    units = _GO_DURATION_UNITS if go else _DURATION_UNITS
    total, position = 0.0, 0
    for match in _DURATION_TERM.finditer(compact):
        if match.start() != position or match.group(2) not in units:
            break
        total += float(match.group(1)) * units[match.group(2)]
        position = match.end()
    if not compact or position != len(compact):
        if go:
            raise CryptoError(
                f"duration {text!r} is not valid; use numbers with units h, m, s, ms, us, ns"
                " (e.g. 24h or 1h30m)"
            )
        raise CryptoError(
            f"duration {text!r} is not valid; use numbers with units w, d, h, m, s (e.g. 8h)"
        )
    return timedelta(seconds=sign * total)


def format_duration(seconds: float) -> str:
    """Short human text: ``3h``, ``2d 4h``, ``45m``, ``30s`` (largest two units)."""
    seconds = int(abs(seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2])


@dataclass(frozen=True)
class RenewBefore:
    """A renewal threshold: a ``fraction`` of the lifetime, or a fixed number of ``seconds``."""

    fraction: float | None = None
    seconds: int | None = None

    @classmethod
    def parse(cls, value: Any) -> RenewBefore:
        """Accept ``0.33``, ``"0.33"``, ``"33%"`` (fractions) or ``"8h"``, ``"7d"`` (durations)."""
        if isinstance(value, bool):
            raise CryptoError(f"renew_before {value!r} must be a fraction or a duration")
        text = str(value).strip()
        number: float | None = None
        if text.endswith("%"):
            try:
                number = float(text[:-1]) / 100
            except ValueError:
                number = None
        else:
            try:
                number = float(text)
            except ValueError:
                number = None
        if number is not None:
            if not 0 <= number < 1:
                raise CryptoError(
                    f"renew_before {value!r} must be a fraction from 0 to below 1 (e.g. 0.33) "
                    "or a duration with a unit (e.g. 8h)"
                )
            return cls(fraction=number)
        try:
            return cls(seconds=int(parse_duration(text).total_seconds()))
        except CryptoError:
            raise CryptoError(
                f"renew_before {value!r} must be a fraction (e.g. 0.33) or a duration "
                "(e.g. 8h, 7d, 1h30m)"
            ) from None

    def threshold_seconds(self, lifetime_seconds: float) -> int:
        """The threshold in seconds for a certificate of the given lifetime."""
        if self.fraction is not None:
            return int(self.fraction * lifetime_seconds)
        return int(self.seconds or 0)

    def describe(self, lifetime_seconds: float) -> str:
        if self.fraction is not None:
            return (
                f"{self.fraction:.0%} of its lifetime "
                f"({format_duration(self.threshold_seconds(lifetime_seconds))})"
            )
        return format_duration(self.seconds or 0)


@dataclass
class Desired:
    """What a certificate should be; ``None`` fields are not checked."""

    subject: dict[str, Any] | None = None  # SUBJECT_FIELDS keys; only given fields compared
    sans: tuple[San, ...] | None = None
    profile: str | None = None
    key: Any = None  # private or public key the certificate must match
    renew_before: RenewBefore | None = None
    anchors: list[x509.Certificate] | None = None  # trust bundle
    intermediates: list[x509.Certificate] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        subject: dict[str, Any] | None = None,
        subject_alt_names: list[Any] | None = None,
        profile: str | None = None,
        renew_before: Any = None,
    ) -> Desired:
        """Validate the user-given parts (subject fields, SAN strings, profile, threshold)."""
        fields = {k: v for k, v in (subject or {}).items() if v not in (None, "")}
        if fields:
            build_name(fields)  # validation only
        if profile is not None:
            _check_profile(profile)
        return cls(
            subject=fields or None,
            sans=None if subject_alt_names is None else parse_sans(subject_alt_names),
            profile=profile,
            renew_before=None if renew_before in (None, "") else RenewBefore.parse(renew_before),
        )


@dataclass
class Verdict:
    """The result of :func:`evaluate_certificate`."""

    needs_signing: bool
    reasons: list[str]
    facts: dict[str, Any]

    @property
    def reason(self) -> str:
        """All reasons in one line, or ``certificate is valid`` when none."""
        return "; ".join(self.reasons) if self.reasons else "certificate is valid"


def evaluate_certificate(
    cert: x509.Certificate, desired: Desired, now: datetime | None = None
) -> Verdict:
    """Compare a certificate with ``desired`` and decide whether it needs (re-)signing.

    ``facts`` holds :func:`certificate_facts` plus ``matches_key``, ``chains_to_trust``
    (``None`` when not checked), ``trust_message`` and ``renew_threshold_seconds``.
    """
    now = now or datetime.now(timezone.utc)
    facts = certificate_facts(cert, now)
    reasons: list[str] = []
    remaining = facts["remaining_seconds"]
    lifetime = facts["lifetime_seconds"]

    if desired.key is not None:
        facts["matches_key"] = same_public_key(cert.public_key(), desired.key)
        if not facts["matches_key"]:
            reasons.append("certificate does not match key")
    else:
        facts["matches_key"] = None

    if desired.anchors is not None:
        ok, message = chains_to(cert, desired.anchors, desired.intermediates, now)
        facts["chains_to_trust"], facts["trust_message"] = ok, message
        if not ok:
            reasons.append(f"certificate does not chain to the trust bundle: {message}")
    else:
        facts["chains_to_trust"], facts["trust_message"] = None, None

    if desired.subject:
        current = facts["subject"]
        for key, value in desired.subject.items():
            if current.get(key) != str(value).strip():
                reasons.append(f"subject {key} differs: {current.get(key)!r}, wanted {value!r}")

    if desired.sans is not None:
        # With no SANs wanted, step-ca issues the common name as the only SAN.
        common_name = (desired.subject or {}).get("common_name")
        wanted = certificate_sans(str(common_name).strip() if common_name else None, desired.sans)
        san_diff = format_san_diff(sans_of(cert.extensions), wanted)
        if san_diff:
            reasons.append(f"SANs differ: {san_diff}")

    if desired.profile is not None and facts["profile"] != desired.profile:
        reasons.append(f"profile is {facts['profile']}, wanted {desired.profile}")

    if not_valid_before(cert) > now + timedelta(minutes=5):
        reasons.append(
            f"certificate is not valid before {facts['not_before']} "
            f"(in {format_duration((not_valid_before(cert) - now).total_seconds())})"
        )
    if remaining <= 0:
        reasons.append(f"certificate expired {format_duration(-remaining)} ago")
        facts["renew_threshold_seconds"] = (
            desired.renew_before.threshold_seconds(lifetime) if desired.renew_before else None
        )
    elif desired.renew_before is not None:
        threshold = desired.renew_before.threshold_seconds(lifetime)
        facts["renew_threshold_seconds"] = threshold
        if remaining < threshold:
            reasons.append(
                f"certificate expires in {format_duration(remaining)}, below the renewal "
                f"threshold of {desired.renew_before.describe(lifetime)}"
            )
    else:
        facts["renew_threshold_seconds"] = None
    return Verdict(bool(reasons), reasons, facts)
