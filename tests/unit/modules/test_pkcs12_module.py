# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pkcs12 module in-process with real files, and the bundles checked with openssl."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12 as pkcs12_lib
from cryptography.x509.oid import ExtendedKeyUsageOID
from mtls_testlib import pem

from ansible_collections.mtls.rollout.plugins.module_utils import _crypto, _pkcs12
from ansible_collections.mtls.rollout.plugins.modules import pkcs12

PASSPHRASE = "Tr0ub4dor&3-long-enough"
CLIENT = [ExtendedKeyUsageOID.CLIENT_AUTH]
OPENSSL = shutil.which("openssl")
# cryptography < 38 (Ubuntu 22.04) writes only the legacy encryption; < 36 reads no
# friendly names. The tests run on 3.4.8, 38 and newer.
ENC = "modern" if _pkcs12.modern_supported() else "legacy"
needs_modern = pytest.mark.skipif(ENC != "modern", reason="modern needs cryptography >= 38")
needs_friendly_names = pytest.mark.skipif(
    not hasattr(pkcs12_lib, "load_pkcs12"), reason="reading friendly names needs cryptography >= 36"
)


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def files(tmp_path, test_ca):
    """John Doe's key and certificate as the certificate role leaves them on a host."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = test_ca.issue(
        key.public_key(), "John Doe", sans=[x509.RFC822Name("john.doe@example.com")], ekus=CLIENT
    )
    paths = {
        "key": tmp_path / "john.key",
        "crt": tmp_path / "john.crt",
        "root": tmp_path / "ca-bundle.pem",
        "p12": tmp_path / "john.p12",
    }
    paths["key"].write_bytes(_crypto.serialize_private_key(key))
    paths["crt"].write_bytes(pem(cert) + pem(test_ca.intermediate))
    paths["root"].write_bytes(pem(test_ca.root))
    return dict(paths, key_object=key, cert=cert, ca=test_ca)


def _args(files, **extra):
    args = {
        "path": str(files["p12"]),
        "privatekey_path": str(files["key"]),
        "certificate_path": str(files["crt"]),
        "passphrase": PASSPHRASE,
        "encryption": ENC,
    }
    args.update(extra)
    return args


@pytest.fixture(autouse=True)
def _no_commands(monkeypatch):
    """The module runs no command, so the passphrase can never reach an argv."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("pkcs12 must not run commands")

    monkeypatch.setattr("ansible.module_utils.basic.AnsibleModule.run_command", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)


def four_runs(run_module, args):
    results = [
        run_module(pkcs12, args, check=True),
        run_module(pkcs12, args),
        run_module(pkcs12, args, check=True),
        run_module(pkcs12, args),
    ]
    assert [r.get("failed", False) for r in results] == [False] * 4, results
    assert [r["changed"] for r in results] == [True, True, False, False], results
    return results


# ---------------------------------------------------------------------- four runs


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"encryption": "legacy"},
        {"friendly_name": "John Doe (mTLS)"},
        {"other_certificates": ["ROOT"]},
    ],
)
def test_four_runs(run_module, files, extra):
    if "other_certificates" in extra:
        extra = {"other_certificates": [str(files["root"])]}
    check, real, check_again, again = four_runs(run_module, _args(files, **extra))
    scheme = extra.get("encryption", ENC)
    assert check["changed_reason"] == f"{files['p12']} does not exist"
    assert check["diff"]["before"] == {"state": "absent"}
    assert real["encryption"]["scheme"] == scheme
    assert again["changed_reason"] is None
    assert again["diff"]["before"] == again["diff"]["after"]
    assert check_again["certificate"] == real["certificate"] == again["certificate"]
    assert real["certificate"]["serial"] == _crypto.serial_hex(files["cert"].serial_number)
    assert real["friendly_name"] == extra.get("friendly_name", "John Doe")
    chain = [c["subject_string"] for c in real["chain"]]
    expected = ["CN=Test Intermediate CA"]
    if "other_certificates" in extra:
        expected.append("CN=Test Root CA")
    assert chain == expected
    assert _mode(files["p12"]) == 0o600
    opened = _pkcs12.open_bundle(files["p12"].read_bytes(), PASSPHRASE)
    assert opened.certificate == files["cert"]
    assert _crypto.same_public_key(opened.key, files["key_object"])
    assert opened.encryption.scheme == scheme


def test_check_mode_never_writes(run_module, files):
    result = run_module(pkcs12, _args(files), check=True)
    assert result["changed"] is True
    assert result["encryption"]["scheme"] == ENC
    assert not files["p12"].exists()
    assert sorted(os.listdir(files["p12"].parent)) == ["ca-bundle.pem", "john.crt", "john.key"]


def test_mode_0600_whatever_the_umask(run_module, files):
    old = os.umask(0)
    try:
        run_module(pkcs12, _args(files))
    finally:
        os.umask(old)
    assert _mode(files["p12"]) == 0o600


def test_loose_mode_is_fixed_without_rewrite(run_module, files):
    run_module(pkcs12, _args(files))
    before = _sha256(files["p12"])
    os.chmod(files["p12"], 0o644)
    assert run_module(pkcs12, _args(files), check=True)["changed"] is True
    assert _mode(files["p12"]) == 0o644
    result = run_module(pkcs12, _args(files))
    assert (result["changed"], result["changed_reason"]) == (True, "file attributes differ")
    assert (_mode(files["p12"]), _sha256(files["p12"])) == (0o600, before)


def test_result_and_diff_hold_no_secret(run_module, files):
    result = run_module(pkcs12, _args(files))
    text = json.dumps(result)
    assert PASSPHRASE not in text
    assert "BEGIN" not in text
    assert "PRIVATE KEY" not in text
    assert result["diff"]["after"]["key"]["fingerprint"] == _crypto.public_key_fingerprint(
        files["key_object"]
    )


# ----------------------------------------------------------------------- changes


def _renew(files):
    """A new certificate for the same key, as a renewal leaves it."""
    cert = files["ca"].issue(files["key_object"].public_key(), "John Doe", ekus=CLIENT)
    files["crt"].write_bytes(pem(cert) + pem(files["ca"].intermediate))
    return cert


def test_renewed_certificate_rewrites(run_module, files):
    old = run_module(pkcs12, _args(files))
    cert = _renew(files)
    check = run_module(pkcs12, _args(files), check=True)
    assert check["changed"] is True
    assert check["changed_reason"].startswith("the bundle holds another certificate (serial ")
    assert check["diff"]["before"]["certificate"]["serial"] == old["certificate"]["serial"]
    assert check["diff"]["after"]["certificate"]["serial"] == _crypto.serial_hex(cert.serial_number)
    assert _pkcs12.open_bundle(files["p12"].read_bytes(), PASSPHRASE).certificate == files["cert"]
    assert run_module(pkcs12, _args(files))["changed"] is True
    assert _pkcs12.open_bundle(files["p12"].read_bytes(), PASSPHRASE).certificate == cert
    assert run_module(pkcs12, _args(files))["changed"] is False


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        pytest.param(
            {"encryption": "legacy"}, "the bundle uses modern encryption", marks=needs_modern
        ),
        pytest.param(
            {"friendly_name": "Johnny"},
            "friendly name is 'John Doe', wanted 'Johnny'",
            marks=needs_friendly_names,
        ),
        ({"other_certificates": ["ROOT"]}, "the chain differs"),
        ({"force": True}, "force=true"),
    ],
)
def test_changed_option_rewrites(run_module, files, extra, reason):
    if "other_certificates" in extra:
        extra = {"other_certificates": [str(files["root"])]}
    run_module(pkcs12, _args(files))
    result = run_module(pkcs12, _args(files, **extra))
    assert result["changed"] is True
    assert result["changed_reason"].startswith(reason)
    if "force" not in extra:
        assert run_module(pkcs12, _args(files, **extra))["changed"] is False


@needs_modern
def test_encryption_change_back_to_modern(run_module, files):
    run_module(pkcs12, _args(files, encryption="legacy"))
    result = run_module(pkcs12, _args(files))
    assert result["changed_reason"].startswith("the bundle uses legacy encryption (PBE-SHA1-3DES")
    assert _pkcs12.detect_encryption(files["p12"].read_bytes()).scheme == "modern"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "the passphrase does not open the bundle"),
        (b"not a bundle", "the file is not a readable PKCS#12 bundle"),
    ],
)
def test_unopenable_bundle_is_rewritten_and_says_why(run_module, files, content, reason):
    if content is None:
        run_module(pkcs12, _args(files, passphrase="an older passphrase"))
    else:
        files["p12"].write_bytes(content)
    before = _sha256(files["p12"])
    check = run_module(pkcs12, _args(files), check=True)
    assert check["changed"] is True
    assert check["changed_reason"] == f"{files['p12']}: {reason}" + (
        " (another passphrase, or a damaged file); rewritten" if content is None else "; rewritten"
    )
    assert check["diff"]["before"]["state"] == "unreadable"
    assert _sha256(files["p12"]) == before
    assert run_module(pkcs12, _args(files))["changed"] is True
    assert _pkcs12.open_bundle(files["p12"].read_bytes(), PASSPHRASE).certificate == files["cert"]


# ------------------------------------------------------------------------ failures


def _other_key(files):
    other = ec.generate_private_key(ec.SECP256R1())
    files["key"].write_bytes(_crypto.serialize_private_key(other))


@pytest.mark.parametrize(
    ("change", "extra", "message"),
    [
        (_other_key, {}, "does not match the certificate"),
        (lambda f: f["crt"].write_bytes(b"garbage"), {}, "holds an unreadable certificate"),
        (lambda f: f["key"].unlink(), {}, "privatekey_path {key} does not exist"),
        (None, {"passphrase": ""}, "passphrase must not be empty"),
        (None, {"other_certificates": ["{missing}"]}, "other_certificates {missing} does not"),
        (None, {"privatekey_passphrase": "x"}, None),  # a plain key loads with a passphrase too
    ],
)
def test_bad_input_leaves_the_bundle_identical(run_module, files, change, extra, message):
    run_module(pkcs12, _args(files))
    before = _sha256(files["p12"])
    names = {"key": files["key"], "missing": files["p12"].parent / "missing.pem"}
    extra = {
        k: [v.format(**names) for v in value] if isinstance(value, list) else value
        for k, value in extra.items()
    }
    if change is not None:
        change(files)
    for check in (True, False):
        result = run_module(pkcs12, _args(files, **extra), check=check)
        if message is None:
            assert result["changed"] is False
            continue
        assert result["failed"] is True, result
        assert message.format(**names) in result["msg"]
        assert "Traceback" not in result["msg"]
        assert _sha256(files["p12"]) == before


def test_present_needs_inputs(run_module, tmp_path):
    result = run_module(pkcs12, {"path": str(tmp_path / "x.p12")})
    assert result["failed"] is True
    assert "privatekey_path, certificate_path, passphrase" in result["msg"]


def test_modern_on_old_cryptography_fails_clearly(run_module, files, monkeypatch):
    monkeypatch.setattr(_pkcs12, "modern_supported", lambda: False)
    result = run_module(pkcs12, _args(files, encryption="modern"))
    assert result["failed"] is True
    assert "needs Python cryptography >= 38" in result["msg"]
    assert "encryption=legacy" in result["msg"]
    assert not files["p12"].exists()


def test_absent(run_module, files):
    run_module(pkcs12, _args(files))
    args = {"path": str(files["p12"]), "state": "absent"}
    check = run_module(pkcs12, args, check=True)
    assert (check["changed"], files["p12"].exists()) == (True, True)
    real = run_module(pkcs12, args)
    assert (real["changed"], files["p12"].exists()) == (True, False)
    assert run_module(pkcs12, args, check=True)["changed"] is False
    assert run_module(pkcs12, args)["changed"] is False


# ------------------------------------------------- acceptance: openssl reads the bundle


def _openssl(*args, passphrase, cwd):
    """Run openssl with the passphrase in the environment, never in argv."""
    return subprocess.run(
        [OPENSSL, *args, "-passin", "env:MTLS_P12_PASS"],
        cwd=cwd,
        env=dict(os.environ, MTLS_P12_PASS=passphrase),
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command")
@pytest.mark.parametrize(
    ("scheme", "expected"),
    [
        pytest.param(
            "modern",
            ["MAC: sha256", "PBES2, PBKDF2, AES-256-CBC", "PRF hmacWithSHA256"],
            marks=needs_modern,
        ),
        ("legacy", ["MAC: sha1", "pbeWithSHA1And3-KeyTripleDES-CBC"]),
    ],
)
def test_openssl_opens_the_bundle_only_with_the_passphrase(
    run_module, files, monkeypatch, scheme, expected
):
    run_module(pkcs12, _args(files, encryption=scheme, other_certificates=[str(files["root"])]))
    monkeypatch.undo()  # the module has run: openssl may run now
    cwd, p12 = files["p12"].parent, str(files["p12"])

    info = _openssl("pkcs12", "-info", "-noout", "-in", p12, passphrase=PASSPHRASE, cwd=cwd)
    assert info.returncode == 0, info.stderr
    for text in expected:
        assert text in info.stderr + info.stdout, info.stderr
    if scheme == "modern":
        assert "3DES" not in info.stderr + info.stdout
        assert "Iteration 100000" in info.stderr + info.stdout

    wrong = _openssl("pkcs12", "-info", "-noout", "-in", p12, passphrase="wrong", cwd=cwd)
    assert wrong.returncode != 0
    assert "mac verify error" in wrong.stderr.lower()

    key = _openssl(
        "pkcs12", "-in", p12, "-nocerts", "-nodes", passphrase=PASSPHRASE, cwd=cwd
    )  # fmt: skip
    assert key.returncode == 0, key.stderr
    extracted = serialization.load_pem_private_key(key.stdout.encode(), None)
    assert _crypto.same_public_key(extracted, files["key_object"])

    leaf = _openssl(
        "pkcs12", "-in", p12, "-clcerts", "-nokeys", passphrase=PASSPHRASE, cwd=cwd
    )  # fmt: skip
    assert leaf.returncode == 0, leaf.stderr
    assert _crypto.load_certificates(leaf.stdout.encode()) == [files["cert"]]
    assert "friendlyName: John Doe" in leaf.stdout

    chain = _openssl(
        "pkcs12", "-in", p12, "-cacerts", "-nokeys", passphrase=PASSPHRASE, cwd=cwd
    )  # fmt: skip
    assert chain.returncode == 0, chain.stderr
    subjects = sorted(c.subject.rfc4514_string() for c in _crypto.load_certificates(
        chain.stdout.encode()
    ))  # fmt: skip
    assert subjects == ["CN=Test Intermediate CA", "CN=Test Root CA"]
