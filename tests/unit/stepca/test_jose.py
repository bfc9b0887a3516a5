# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_jose: JWK thumbprints, PBES2 JWE and ES256 JWS."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ansible_collections.mtls.rollout.plugins.module_utils import _jose

# RFC 7638 section 3.1: the example RSA key and its SHA-256 thumbprint.
RFC7638_KEY = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhD"
        "R1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6C"
        "f0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1"
        "n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1"
        "jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

# Made with gopkg.in/square/go-jose.v2 (the library step uses) from Debian's Go
# sources: PBES2-HS256+A128KW, p2c 100000, cty jwk+json, with this password.
GO_JOSE_PASSWORD = b"go-jose test password"
GO_JOSE_PLAINTEXT = b'{"kty":"EC","note":"made by go-jose"}'
GO_JOSE_A128GCM = (
    "eyJhbGciOiJQQkVTMi1IUzI1NitBMTI4S1ciLCJjdHkiOiJqd2sranNvbiIsImVuYyI6IkExMjhHQ00iLCJwMmMi"
    "OjEwMDAwMCwicDJzIjoiLUNwR3FueENwZW9NM3B1ZUpJdGhudyJ9.oAz2dwntlhJE-ESkYQknwWD2wXo2GsUX.mhF"
    "JZm1PQJmI_59g.PtZBjyD8qzmRJzmV61l7stqVswxEwiWQ7TVxB40tXWkW4MYv0w.-FHb99xZ1fibpNjI6I4QNQ"
)
GO_JOSE_A256GCM = (
    "eyJhbGciOiJQQkVTMi1IUzI1NitBMTI4S1ciLCJjdHkiOiJqd2sranNvbiIsImVuYyI6IkEyNTZHQ00iLCJwMmMi"
    "OjEwMDAwMCwicDJzIjoiSXhwNXR2U0xZNkJ3dnhIQXdnR2djdyJ9.G_jojNScyWKNYRVHHdoLrzEDfUUp7fn5R5lT"
    "WBhRWX2myDshHjuu2g.XIvuiGXKjo4_eQ21.uf1MYGL93HhagbGNXN2W7c93MRqnKgMOwPboM_O2tqOPtJ9Gnw.Kh"
    "BhFX5TxvFWGruTlVlIOw"
)


def test_thumbprint_rfc7638_example():
    assert _jose.jwk_thumbprint(RFC7638_KEY) == RFC7638_THUMBPRINT


def test_thumbprint_ignores_optional_members():
    jwk = _jose.generate_ec_jwk()
    assert _jose.jwk_thumbprint(jwk) == _jose.jwk_thumbprint(_jose.public_jwk(jwk))
    assert _jose.jwk_thumbprint(jwk) == jwk["kid"]


@pytest.mark.parametrize(
    ("crv", "alg", "size"), [("P-256", "ES256", 32), ("P-384", "ES384", 48), ("P-521", "ES512", 66)]
)
def test_generate_ec_jwk(crv, alg, size):
    jwk = _jose.generate_ec_jwk(crv)
    assert {"kty", "crv", "x", "y", "d", "kid", "use", "alg"} <= set(jwk)
    assert (jwk["kty"], jwk["crv"], jwk["use"], jwk["alg"]) == ("EC", crv, "sig", alg)
    assert len(_jose.b64url_decode(jwk["x"])) == size
    assert isinstance(_jose.jwk_to_private_key(jwk), ec.EllipticCurvePrivateKey)


def test_generate_ec_jwk_rejects_unknown_curve():
    with pytest.raises(_jose.JoseError, match="unsupported EC curve"):
        _jose.generate_ec_jwk("P-192")


def test_public_jwk_drops_private_members():
    jwk = _jose.generate_ec_jwk()
    public = _jose.public_jwk(jwk)
    assert "d" not in public
    assert public == {k: v for k, v in jwk.items() if k != "d"}
    assert "d" in jwk  # the input is left alone


@pytest.mark.parametrize("enc", ["A128GCM", "A256GCM"])
def test_jwe_round_trip(enc):
    payload = json.dumps(_jose.generate_ec_jwk()).encode()
    token = _jose.jwe_encrypt_pbes2(payload, b"s3cret password", enc=enc)
    header = _jose.jwe_header(token)
    assert header["alg"] == "PBES2-HS256+A128KW"
    assert header["enc"] == enc
    assert header["cty"] == "jwk+json"
    assert header["p2c"] == 100000
    assert len(_jose.b64url_decode(header["p2s"])) == 16
    assert token.count(".") == 4
    assert _jose.jwe_decrypt_pbes2(token, b"s3cret password") == payload


def test_jwe_tokens_differ_each_time():
    first = _jose.jwe_encrypt_pbes2(b"same", b"pw")
    assert first != _jose.jwe_encrypt_pbes2(b"same", b"pw")


@pytest.mark.parametrize("token", [GO_JOSE_A128GCM, GO_JOSE_A256GCM], ids=["A128GCM", "A256GCM"])
def test_jwe_decrypts_go_jose_tokens(token):
    assert _jose.jwe_decrypt_pbes2(token, GO_JOSE_PASSWORD) == GO_JOSE_PLAINTEXT


@pytest.mark.parametrize("token", [GO_JOSE_A128GCM, GO_JOSE_A256GCM], ids=["A128GCM", "A256GCM"])
def test_jwe_wrong_password(token):
    with pytest.raises(_jose.JoseError) as caught:
        _jose.jwe_decrypt_pbes2(token, b"hunter2-wrong")
    assert "wrong password" in str(caught.value)
    assert "hunter2-wrong" not in str(caught.value)
    assert "hunter2-wrong" not in repr(caught.value.__cause__)


def test_jwe_tampered_ciphertext_fails_authentication():
    token = _jose.jwe_encrypt_pbes2(b"payload", b"pw", p2c=1000)
    parts = token.split(".")
    ciphertext = bytearray(_jose.b64url_decode(parts[3]))
    ciphertext[0] ^= 1
    parts[3] = _jose.b64url_encode(bytes(ciphertext))
    with pytest.raises(_jose.JoseError, match="failed authentication"):
        _jose.jwe_decrypt_pbes2(".".join(parts), b"pw")


def _with_header(token: str, **changes) -> str:
    header = _jose.jwe_header(token)
    header.update(changes)
    parts = token.split(".")
    parts[0] = _jose.b64url_encode(json.dumps(header).encode())
    return ".".join(parts)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"alg": "dir"}, "unsupported JWE key algorithm"),
        ({"enc": "A128CBC-HS256"}, "unsupported JWE content encryption"),
        ({"p2c": 10**9}, "p2c must be between"),
        ({"p2c": 10}, "p2c must be between"),
        ({"zip": "DEF"}, "not supported"),
    ],
)
def test_jwe_rejects_unsupported_headers(changes, message):
    token = _with_header(GO_JOSE_A256GCM, **changes)
    with pytest.raises(_jose.JoseError, match=message):
        _jose.jwe_decrypt_pbes2(token, GO_JOSE_PASSWORD)


@pytest.mark.parametrize("token", ["", "a.b.c", "not a token", "a.b.c.d.e"])
def test_jwe_rejects_garbage(token):
    with pytest.raises(_jose.JoseError):
        _jose.jwe_decrypt_pbes2(token, b"pw")


def test_jwe_encrypt_rejects_bad_arguments():
    with pytest.raises(_jose.JoseError, match="unsupported content encryption"):
        _jose.jwe_encrypt_pbes2(b"x", b"pw", enc="A192GCM")
    with pytest.raises(_jose.JoseError, match="non-empty"):
        _jose.jwe_encrypt_pbes2(b"x", b"")


def test_jws_sign_compact_es256():
    jwk = _jose.generate_ec_jwk()
    claims = {"sub": "John Doe", "n": 1}
    token = _jose.jws_sign_compact(claims, jwk)
    header_b64, payload_b64, signature_b64 = token.split(".")
    assert _jose.jwe_header(token) == {"alg": "ES256", "typ": "JWT", "kid": jwk["kid"]}
    assert json.loads(_jose.b64url_decode(payload_b64)) == claims
    signature = _jose.b64url_decode(signature_b64)
    assert len(signature) == 64  # raw r || s, not DER
    # Verify independently of jws_verify_compact, with cryptography directly.
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    _jose.jwk_to_public_key(jwk).verify(
        encode_dss_signature(r, s),
        f"{header_b64}.{payload_b64}".encode(),
        ec.ECDSA(hashes.SHA256()),
    )
    assert _jose.jws_verify_compact(token, _jose.public_jwk(jwk)) == claims


def test_jws_extra_headers_and_tamper_detection():
    jwk = _jose.generate_ec_jwk("P-384")
    token = _jose.jws_sign_compact({"a": 1}, jwk, {"kid": "custom", "typ": "JWT"})
    assert _jose.jwe_header(token)["kid"] == "custom"
    assert _jose.jwe_header(token)["alg"] == "ES384"
    tampered = token.split(".")
    tampered[1] = _jose.b64url_encode(b'{"a":2}')
    with pytest.raises(_jose.JoseError, match="does not verify"):
        _jose.jws_verify_compact(".".join(tampered), jwk)
    with pytest.raises(_jose.JoseError, match="does not verify"):
        _jose.jws_verify_compact(token, _jose.generate_ec_jwk("P-384"))


def test_jws_rejects_public_or_mismatched_key():
    jwk = _jose.generate_ec_jwk()
    with pytest.raises(_jose.JoseError, match="not a private EC key"):
        _jose.jws_sign_compact({}, _jose.public_jwk(jwk))
    broken = dict(jwk, x=_jose.generate_ec_jwk()["x"])
    with pytest.raises(_jose.JoseError, match="do not match"):
        _jose.jws_sign_compact({}, broken)
