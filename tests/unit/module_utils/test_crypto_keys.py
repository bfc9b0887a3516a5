# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keys: specs, generation, (de)serialisation, and the private_key decision logic."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ansible_collections.mtls.rollout.plugins.module_utils import _crypto

# Every supported key type; RSA 3072/4096 are validated but not generated (too slow).
SPECS = [
    (("ec", "P-256", None), _crypto.KeySpec("ec", "P-256", 256)),
    (("ec", "P-384", None), _crypto.KeySpec("ec", "P-384", 384)),
    (("ec", "P-521", None), _crypto.KeySpec("ec", "P-521", 521)),
    (("rsa", None, 2048), _crypto.KeySpec("rsa", None, 2048)),
    (("rsa", None, 3072), _crypto.KeySpec("rsa", None, 3072)),
    (("rsa", None, 4096), _crypto.KeySpec("rsa", None, 4096)),
    (("ed25519", None, None), _crypto.KeySpec("ed25519", None, 256)),
]
GENERATED = [spec for args, spec in SPECS if spec.size not in (3072, 4096)]


@pytest.fixture(scope="module")
def keys() -> dict[_crypto.KeySpec, object]:
    return {spec: _crypto.generate_private_key(spec) for spec in GENERATED}


@pytest.mark.parametrize(("args", "expected"), SPECS)
def test_key_spec_create(args, expected):
    assert _crypto.KeySpec.create(*args) == expected


def test_key_spec_defaults():
    assert _crypto.KeySpec.create() == _crypto.KeySpec("ec", "P-256", 256)
    assert _crypto.KeySpec.create("rsa").size == 2048


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("dsa", None, None), "'dsa'"),
        (("ec", "P-224", None), "'P-224'"),
        (("rsa", None, 1024), "1024"),
    ],
)
def test_key_spec_rejects(args, message):
    with pytest.raises(_crypto.CryptoError, match=message):
        _crypto.KeySpec.create(*args)


@pytest.mark.parametrize("spec", GENERATED, ids=lambda s: s.describe())
def test_generated_key_matches_spec(keys, spec):
    key = keys[spec]
    assert _crypto.KeySpec.of(key) == spec
    assert _crypto.KeySpec.of(key.public_key()) == spec


@pytest.mark.parametrize("spec", GENERATED, ids=lambda s: s.describe())
@pytest.mark.parametrize("passphrase", [None, "s3cret"])
def test_pkcs8_round_trip(keys, spec, passphrase):
    key = keys[spec]
    data = _crypto.serialize_private_key(key, "pkcs8", passphrase)
    label = b"ENCRYPTED PRIVATE KEY" if passphrase else b"BEGIN PRIVATE KEY"
    assert label in data
    loaded = _crypto.load_private_key(data, passphrase)
    assert loaded.format == "pkcs8"
    assert loaded.encrypted is bool(passphrase)
    assert _crypto.same_public_key(loaded.key, key)


@pytest.mark.parametrize(
    "spec", [s for s in GENERATED if s.type != "ed25519"], ids=lambda s: s.describe()
)
def test_traditional_round_trip(keys, spec):
    data = _crypto.serialize_private_key(keys[spec], "traditional", "pw")
    assert b"Proc-Type: 4,ENCRYPTED" in data
    loaded = _crypto.load_private_key(data, "pw")
    assert (loaded.format, loaded.encrypted) == ("traditional", True)


def test_ed25519_has_no_traditional_format(keys):
    with pytest.raises(_crypto.CryptoError, match="pkcs8"):
        _crypto.serialize_private_key(keys[_crypto.KeySpec("ed25519", None, 256)], "traditional")


def test_der_key_is_loaded_as_der(keys):
    key = keys[_crypto.KeySpec("ec", "P-256", 256)]
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert _crypto.load_private_key(der).format == "der"


@pytest.mark.parametrize(
    ("data", "passphrase", "message"),
    [
        (b"garbage", None, "not a readable private key"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", None, "readable"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", None, "not a priv"),
        (b"", None, "not a readable"),
    ],
)
def test_load_rejects_bad_data(data, passphrase, message):
    with pytest.raises(_crypto.KeyUnreadableError, match=message):
        _crypto.load_private_key(data, passphrase, "/k.pem")


def test_load_wrong_or_missing_passphrase(keys):
    data = _crypto.serialize_private_key(keys[_crypto.KeySpec("ec", "P-256", 256)], "pkcs8", "a")
    with pytest.raises(_crypto.KeyUnreadableError, match="wrong passphrase"):
        _crypto.load_private_key(data, "b", "/k.pem")
    with pytest.raises(_crypto.KeyUnreadableError, match="is encrypted; set the passphrase"):
        _crypto.load_private_key(data, None, "/k.pem")


def test_passphrase_for_plain_key_is_not_fatal(keys):
    key = keys[_crypto.KeySpec("ec", "P-256", 256)]
    loaded = _crypto.load_private_key(_crypto.serialize_private_key(key), "unused")
    assert loaded.encrypted is False
    assert _crypto.same_public_key(loaded.key, key)


def test_fingerprint_is_sha256_of_spki(keys):
    key = keys[_crypto.KeySpec("ec", "P-256", 256)]
    fingerprint = _crypto.public_key_fingerprint(key)
    assert len(fingerprint) == 64
    assert fingerprint == _crypto.public_key_fingerprint(key.public_key())
    other = keys[_crypto.KeySpec("ec", "P-384", 384)]
    assert fingerprint != _crypto.public_key_fingerprint(other)
    assert _crypto.public_key_pem(key).startswith("-----BEGIN PUBLIC KEY-----")


def test_key_facts_never_hold_private_material(keys):
    key = keys[_crypto.KeySpec("rsa", None, 2048)]
    facts = _crypto.key_facts(key, "pkcs8", False)
    assert facts == {
        "type": "rsa",
        "size": 2048,
        "curve": None,
        "fingerprint": _crypto.public_key_fingerprint(key),
        "format": "pkcs8",
        "encrypted": False,
    }


def test_describe():
    assert _crypto.KeySpec("ec", "P-384", 384).describe() == "EC P-384"
    assert _crypto.KeySpec("rsa", None, 3072).describe() == "RSA 3072"
    assert _crypto.KeySpec("ed25519", None, 256).describe() == "Ed25519"


def test_foreign_curve_is_described():
    key = ec.generate_private_key(ec.SECP256K1())
    assert _crypto.KeySpec.of(key) == _crypto.KeySpec("ec", "secp256k1", 256)


# ------------------------------------------------------------- PrivateKeyBackend

P256 = _crypto.KeySpec("ec", "P-256", 256)
P384 = _crypto.KeySpec("ec", "P-384", 384)


@pytest.fixture(scope="module")
def p256_pem(keys) -> bytes:
    return _crypto.serialize_private_key(keys[P256])


def backend(spec=P256, **kwargs) -> _crypto.PrivateKeyBackend:
    return _crypto.PrivateKeyBackend(spec, name="/k.pem", **kwargs)


def test_backend_creates_missing_key():
    assessment = backend().assess(None)
    assert (assessment.action, assessment.reason) == ("create", "/k.pem does not exist")
    key, data = backend().produce(assessment)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert _crypto.same_public_key(_crypto.load_private_key(data).key, key)


def test_backend_keeps_matching_key(p256_pem):
    assessment = backend().assess(p256_pem)
    assert assessment.action == "keep"
    assert assessment.reason is None
    assert not assessment.changes


@pytest.mark.parametrize("regenerate", ["on_mismatch", "always"])
def test_backend_regenerates_on_curve_change(p256_pem, keys, regenerate):
    assessment = backend(P384, regenerate=regenerate).assess(p256_pem)
    assert assessment.action == "regenerate"
    key, _ = backend(P384).produce(assessment)
    assert _crypto.KeySpec.of(key) == P384
    assert not _crypto.same_public_key(key, keys[P256])


def test_backend_mismatch_reason(p256_pem):
    assert backend(P384).assess(p256_pem).reason == "key is EC P-256, wanted EC P-384"


def test_backend_fail_on_mismatch(p256_pem):
    with pytest.raises(_crypto.CryptoError, match=r"EC P-256, wanted EC P-384 \(regenerate=fail"):
        backend(P384, regenerate="fail").assess(p256_pem)


def test_backend_never_keeps_mismatch_with_warning(p256_pem):
    assessment = backend(P384, regenerate="never").assess(p256_pem)
    assert assessment.action == "keep"
    assert "regenerate=never" in assessment.warnings[0]


def test_backend_converts_format_keeping_the_key(p256_pem, keys):
    b = backend(fmt="traditional")
    assessment = b.assess(p256_pem)
    assert (assessment.action, assessment.reason) == (
        "convert",
        "key is stored as pkcs8, wanted traditional",
    )
    key, data = b.produce(assessment)
    assert b"BEGIN EC PRIVATE KEY" in data
    assert _crypto.same_public_key(key, keys[P256])


def test_backend_encrypts_plain_key_keeping_it(p256_pem, keys):
    b = backend(passphrase="pw")
    assessment = b.assess(p256_pem)
    assert assessment.action == "convert"
    _, data = b.produce(assessment)
    loaded = _crypto.load_private_key(data, "pw")
    assert loaded.encrypted and _crypto.same_public_key(loaded.key, keys[P256])


@pytest.mark.parametrize("regenerate", ["never", "fail", "on_mismatch"])
def test_backend_unreadable_key_fails(regenerate):
    with pytest.raises(_crypto.CryptoError, match="left untouched"):
        backend(regenerate=regenerate).assess(b"not a key")


def test_backend_unreadable_key_hint_names_the_option():
    with pytest.raises(_crypto.CryptoError, match="replace_unreadable=true"):
        backend().assess(b"not a key")


def test_backend_wrong_passphrase_fails(keys):
    data = _crypto.serialize_private_key(keys[P256], "pkcs8", "right")
    with pytest.raises(_crypto.CryptoError, match="wrong passphrase"):
        backend(passphrase="wrong").assess(data)


@pytest.mark.parametrize(
    ("kwargs", "action"),
    [({"replace_unreadable": True}, "regenerate"), ({"regenerate": "always"}, "regenerate")],
)
def test_backend_replaces_unreadable_when_asked(kwargs, action):
    assert backend(**kwargs).assess(b"not a key").action == action


def test_backend_always(p256_pem):
    assert backend(regenerate="always").assess(p256_pem).reason == "regenerate=always"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"regenerate": "sometimes"}, "regenerate must be"),
        ({"fmt": "der"}, "format must be"),
    ],
)
def test_backend_rejects_bad_options(kwargs, message):
    with pytest.raises(_crypto.CryptoError, match=message):
        backend(**kwargs)


def test_backend_rejects_traditional_ed25519():
    with pytest.raises(_crypto.CryptoError, match="Ed25519"):
        backend(_crypto.KeySpec("ed25519", None, 256), fmt="traditional")


@pytest.mark.parametrize(
    ("spec", "cls"),
    [
        (_crypto.KeySpec("rsa", None, 2048), rsa.RSAPrivateKey),
        (_crypto.KeySpec("ed25519", None, 256), ed25519.Ed25519PrivateKey),
    ],
)
def test_backend_type_change(p256_pem, spec, cls):
    assessment = backend(spec).assess(p256_pem)
    assert assessment.action == "regenerate"
    key, _ = backend(spec).produce(assessment)
    assert isinstance(key, cls)
