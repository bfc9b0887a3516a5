# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The small part of JOSE that step-ca's JWK provisioners need, with ``cryptography`` only.

* EC JSON Web Keys (RFC 7517/7518) and their RFC 7638 thumbprints, which step-ca
  uses as the provisioner's key id (``kid``).
* Compact JWE with ``PBES2-HS256+A128KW`` key management and ``A128GCM`` or
  ``A256GCM`` content encryption (RFC 7516/7518): the format of a provisioner's
  ``encryptedKey``.
* Compact JWS with ``ES256``/``ES384``/``ES512`` (raw ``r || s`` signatures):
  the one-time tokens sent to ``/1.0/sign`` and ``/1.0/revoke``.

No message raised from here ever contains a password or key material.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

try:
    from cryptography.exceptions import InvalidSignature, InvalidTag
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import (
        decode_dss_signature,
        encode_dss_signature,
    )
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
    from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
except ImportError:  # without cryptography: the modules report it with missing_required_lib
    HAS_CRYPTOGRAPHY = False
else:
    HAS_CRYPTOGRAPHY = True

PBES2_ALG = "PBES2-HS256+A128KW"
# Content encryption algorithms and their key sizes in bytes.
CONTENT_ENCRYPTION = {"A128GCM": 16, "A256GCM": 32}
# Bounds on the PBES2 iteration count accepted when decrypting. step uses 100000;
# the upper bound keeps a hostile token from making us spin for minutes.
P2C_MIN = 1000
P2C_MAX = 10_000_000
SALT_SIZE = 16

# curve name -> (cryptography curve class, coordinate size in bytes, JWS alg, hash)
_CURVES: dict[str, tuple[type[ec.EllipticCurve], int, str, type[hashes.HashAlgorithm]]] = (
    {
        "P-256": (ec.SECP256R1, 32, "ES256", hashes.SHA256),
        "P-384": (ec.SECP384R1, 48, "ES384", hashes.SHA384),
        "P-521": (ec.SECP521R1, 66, "ES512", hashes.SHA512),
    }
    if HAS_CRYPTOGRAPHY
    else {}
)
_ALG_TO_CURVE = {info[2]: crv for crv, info in _CURVES.items()}
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
# RFC 7638 section 3.2: the required members per key type, in lexicographic order.
_THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "oct": ("k", "kty"),
}


class JoseError(Exception):
    """A JOSE object could not be built, parsed, decrypted or verified.

    The message is safe to show: it never contains a password or key material.
    """


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; raise :class:`JoseError` on bad input."""
    if not isinstance(text, str):
        raise JoseError("expected a base64url string")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise JoseError("invalid base64url data") from exc


def _json_b64(obj: dict[str, Any]) -> str:
    return b64url_encode(json.dumps(obj, separators=(",", ":")).encode())


def _int_to_b64(value: int, size: int) -> str:
    return b64url_encode(value.to_bytes(size, "big"))


def _b64_to_int(text: str) -> int:
    return int.from_bytes(b64url_decode(text), "big")


def _curve_info(crv: str) -> tuple[type[ec.EllipticCurve], int, str, type[hashes.HashAlgorithm]]:
    try:
        return _CURVES[crv]
    except KeyError:
        raise JoseError(f"unsupported EC curve {crv!r}; use one of {', '.join(_CURVES)}") from None


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of ``jwk``, base64url encoded (step-ca's ``kid``)."""
    kty = jwk.get("kty")
    members = _THUMBPRINT_MEMBERS.get(kty)  # type: ignore[arg-type]
    if members is None:
        raise JoseError(f"cannot compute a thumbprint for key type {kty!r}")
    missing = [name for name in members if name not in jwk]
    if missing:
        raise JoseError(f"the JWK lacks required members: {', '.join(missing)}")
    canonical = json.dumps(
        {name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True
    )
    return b64url_encode(hashlib.sha256(canonical.encode()).digest())


def ec_private_key_to_jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    """A private EC JWK for ``key`` with ``kid`` (thumbprint), ``use`` and ``alg`` set."""
    crv = {info[0].name: name for name, info in _CURVES.items()}.get(key.curve.name)
    if crv is None:
        raise JoseError(f"unsupported EC curve {key.curve.name}")
    size, alg = _CURVES[crv][1:3]
    numbers = key.private_numbers()
    jwk: dict[str, Any] = {
        "kty": "EC",
        "crv": crv,
        "x": _int_to_b64(numbers.public_numbers.x, size),
        "y": _int_to_b64(numbers.public_numbers.y, size),
        "d": _int_to_b64(numbers.private_value, size),
    }
    jwk["kid"] = jwk_thumbprint(jwk)
    jwk["use"] = "sig"
    jwk["alg"] = alg
    return jwk


def generate_ec_jwk(crv: str = "P-256") -> dict[str, Any]:
    """Generate a private EC JWK (kty, crv, x, y, d, kid, use, alg) on curve ``crv``.

    ``kid`` is the RFC 7638 thumbprint, as step-ca expects for a JWK provisioner;
    ``alg`` is ES256, ES384 or ES512 according to the curve.
    """
    curve_cls = _curve_info(crv)[0]
    return ec_private_key_to_jwk(ec.generate_private_key(curve_cls()))


def public_jwk(jwk: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``jwk`` without its private members (kid, use and alg are kept)."""
    return {name: value for name, value in jwk.items() if name not in _PRIVATE_MEMBERS}


def jwk_to_private_key(jwk: dict[str, Any]) -> ec.EllipticCurvePrivateKey:
    """Load a private EC JWK into a ``cryptography`` key, checking x/y match d."""
    if jwk.get("kty") != "EC" or "d" not in jwk:
        raise JoseError("the JWK is not a private EC key")
    curve_cls = _curve_info(jwk.get("crv", ""))[0]
    try:
        key = ec.derive_private_key(_b64_to_int(jwk["d"]), curve_cls())
    except (ValueError, TypeError) as exc:
        raise JoseError("the JWK holds an invalid EC private key") from exc
    public = key.public_key().public_numbers()
    if (public.x, public.y) != (_b64_to_int(jwk.get("x", "")), _b64_to_int(jwk.get("y", ""))):
        raise JoseError("the JWK's public coordinates do not match its private key")
    return key


def jwk_to_public_key(jwk: dict[str, Any]) -> ec.EllipticCurvePublicKey:
    """Load a public (or private) EC JWK's public key."""
    if jwk.get("kty") != "EC":
        raise JoseError("the JWK is not an EC key")
    curve_cls = _curve_info(jwk.get("crv", ""))[0]
    try:
        return ec.EllipticCurvePublicNumbers(
            _b64_to_int(jwk["x"]), _b64_to_int(jwk["y"]), curve_cls()
        ).public_key()
    except (KeyError, ValueError) as exc:
        raise JoseError("the JWK holds an invalid EC public key") from exc


def _pbes2_kek(password: bytes, salt_input: bytes, p2c: int) -> bytes:
    # RFC 7518 section 4.8.1.1: the salt is the alg name, a zero byte, then p2s.
    salt = PBES2_ALG.encode() + b"\x00" + salt_input
    return PBKDF2HMAC(algorithm=hashes.SHA256(), length=16, salt=salt, iterations=p2c).derive(
        password
    )


def jwe_encrypt_pbes2(
    plaintext: bytes,
    password: bytes,
    *,
    enc: str = "A256GCM",
    p2c: int = 100000,
    cty: str = "jwk+json",
) -> str:
    """Encrypt ``plaintext`` to a compact JWE with PBES2-HS256+A128KW and AES-GCM.

    The defaults produce what ``step crypto jwk create`` writes as a provisioner's
    ``encryptedKey``: a 16-byte random salt, 100000 PBKDF2 iterations,
    ``enc`` A256GCM and ``cty`` ``jwk+json``.
    """
    if enc not in CONTENT_ENCRYPTION:
        raise JoseError(f"unsupported content encryption {enc!r}")
    if not P2C_MIN <= p2c <= P2C_MAX:
        raise JoseError(f"p2c must be between {P2C_MIN} and {P2C_MAX}")
    if not isinstance(password, bytes) or not password:
        raise JoseError("the password must be non-empty bytes")
    salt = os.urandom(SALT_SIZE)
    header: dict[str, Any] = {"alg": PBES2_ALG, "enc": enc}
    if cty:
        header["cty"] = cty
    header["p2c"] = p2c
    header["p2s"] = b64url_encode(salt)
    protected = _json_b64(header)
    cek = os.urandom(CONTENT_ENCRYPTION[enc])
    encrypted_key = aes_key_wrap(_pbes2_kek(password, salt, p2c), cek)
    iv = os.urandom(12)
    sealed = AESGCM(cek).encrypt(iv, plaintext, protected.encode("ascii"))
    ciphertext, tag = sealed[:-16], sealed[-16:]
    return ".".join(
        (
            protected,
            b64url_encode(encrypted_key),
            b64url_encode(iv),
            b64url_encode(ciphertext),
            b64url_encode(tag),
        )
    )


def jwe_header(token: str) -> dict[str, Any]:
    """The protected header of a compact JWE or JWS, without checking anything else."""
    if not isinstance(token, str) or token.count(".") not in (2, 4):
        raise JoseError("not a compact JOSE object")
    try:
        header = json.loads(b64url_decode(token.split(".", 1)[0]))
    except ValueError as exc:
        raise JoseError("the JOSE protected header is not valid JSON") from exc
    if not isinstance(header, dict):
        raise JoseError("the JOSE protected header is not a JSON object")
    return header


def jwe_decrypt_pbes2(token: str, password: bytes) -> bytes:
    """Decrypt a compact PBES2-HS256+A128KW JWE (enc A128GCM or A256GCM).

    Raises :class:`JoseError` for a malformed token, an unsupported algorithm, or
    a wrong password; the message never contains the password.
    """
    if not isinstance(token, str) or token.count(".") != 4:
        raise JoseError("the encrypted key is not a compact JWE (expected 5 parts)")
    protected, enc_key_b64, iv_b64, ct_b64, tag_b64 = token.strip().split(".")
    header = jwe_header(token.strip())
    if header.get("alg") != PBES2_ALG:
        raise JoseError(f"unsupported JWE key algorithm {header.get('alg')!r}; need {PBES2_ALG}")
    enc = header.get("enc")
    if enc not in CONTENT_ENCRYPTION:
        raise JoseError(f"unsupported JWE content encryption {enc!r}")
    if "zip" in header or "crit" in header:
        raise JoseError("compressed or critical-header JWEs are not supported")
    p2c = header.get("p2c")
    if not isinstance(p2c, int) or isinstance(p2c, bool) or not P2C_MIN <= p2c <= P2C_MAX:
        raise JoseError(f"the JWE iteration count p2c must be between {P2C_MIN} and {P2C_MAX}")
    salt = b64url_decode(header.get("p2s", ""))
    if len(salt) < 8:
        raise JoseError("the JWE salt p2s is missing or shorter than 8 bytes")
    iv = b64url_decode(iv_b64)
    tag = b64url_decode(tag_b64)
    if len(iv) != 12 or len(tag) != 16:
        raise JoseError("the JWE IV or authentication tag has the wrong size")
    try:
        cek = aes_key_unwrap(_pbes2_kek(password, salt, p2c), b64url_decode(enc_key_b64))
    except InvalidUnwrap:
        raise JoseError(
            "cannot decrypt the encrypted key: wrong password (or a corrupted key)"
        ) from None
    except ValueError as exc:
        raise JoseError("the JWE encrypted key is malformed") from exc
    if len(cek) != CONTENT_ENCRYPTION[enc]:
        raise JoseError("the JWE content key has the wrong size for its enc")
    try:
        return AESGCM(cek).decrypt(iv, b64url_decode(ct_b64) + tag, protected.encode("ascii"))
    except InvalidTag:
        raise JoseError("the JWE content failed authentication (corrupted or altered)") from None


def jws_sign_compact(
    claims: dict[str, Any], jwk: dict[str, Any], headers: dict[str, Any] | None = None
) -> str:
    """Sign ``claims`` as a compact JWS (a JWT) with the private EC ``jwk``.

    The header is ``{"alg": <ES256/384/512 by curve>, "kid": jwk["kid"], "typ": "JWT"}``
    updated with ``headers``. The signature is the raw ``r || s`` form of RFC 7518.
    """
    key = jwk_to_private_key(jwk)
    size, alg, hash_cls = _CURVES[jwk["crv"]][1:]
    if jwk.get("alg") not in (None, alg):
        raise JoseError(f"the JWK's alg {jwk.get('alg')!r} does not fit curve {jwk['crv']}")
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    kid = jwk.get("kid") or jwk_thumbprint(jwk)
    header["kid"] = kid
    if headers:
        header.update(headers)
    if header["alg"] != alg:
        raise JoseError(f"header alg {header['alg']!r} does not fit curve {jwk['crv']}")
    signing_input = f"{_json_b64(header)}.{_json_b64(claims)}".encode("ascii")
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hash_cls())))
    signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return f"{signing_input.decode('ascii')}.{b64url_encode(signature)}"


def jws_verify_compact(token: str, jwk: dict[str, Any]) -> dict[str, Any]:
    """Verify an ES256/384/512 compact JWS against ``jwk`` and return its claims.

    Only the signature is checked, not ``exp`` or other claims.
    """
    if not isinstance(token, str) or token.count(".") != 2:
        raise JoseError("not a compact JWS (expected 3 parts)")
    header_b64, payload_b64, sig_b64 = token.split(".")
    header = jwe_header(token)
    crv = _ALG_TO_CURVE.get(header.get("alg"))  # type: ignore[arg-type]
    if crv is None or crv != jwk.get("crv"):
        raise JoseError(f"unsupported or mismatched JWS alg {header.get('alg')!r}")
    size, hash_cls = _CURVES[crv][1], _CURVES[crv][3]
    signature = b64url_decode(sig_b64)
    if len(signature) != 2 * size:
        raise JoseError("the JWS signature has the wrong size")
    der = encode_dss_signature(
        int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
    )
    try:
        jwk_to_public_key(jwk).verify(
            der, f"{header_b64}.{payload_b64}".encode("ascii"), ec.ECDSA(hash_cls())
        )
    except InvalidSignature:
        raise JoseError("the JWS signature does not verify") from None
    try:
        claims = json.loads(b64url_decode(payload_b64))
    except ValueError as exc:
        raise JoseError("the JWS payload is not JSON") from exc
    if not isinstance(claims, dict):
        raise JoseError("the JWS payload is not a JSON object")
    return claims
