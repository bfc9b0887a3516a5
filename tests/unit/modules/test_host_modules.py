# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""private_key, csr and certificate_info run in-process with real files and keys."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from mtls_testlib import make_ca, pem

from ansible_collections.mtls.rollout.plugins.module_utils import _crypto
from ansible_collections.mtls.rollout.plugins.modules import certificate_info, csr, private_key


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def four_runs(run_module, module, args):
    """check, real, check again, real again; returns the four results."""
    results = [
        run_module(module, args, check=True),
        run_module(module, args),
        run_module(module, args, check=True),
        run_module(module, args),
    ]
    assert [r.get("failed", False) for r in results] == [False] * 4, results
    assert [r["changed"] for r in results] == [True, True, False, False], results
    return results


# ---------------------------------------------------------------------- private_key


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"curve": "P-384"},
        {"curve": "P-521"},
        {"type": "rsa", "size": 2048},
        {"type": "ed25519"},
        {"passphrase": "s3cret"},
        {"format": "traditional"},
    ],
)
def test_private_key_four_runs(run_module, tmp_path, options):
    path = tmp_path / "key.pem"
    check, real, _, again = four_runs(run_module, private_key, dict(options, path=str(path)))
    assert "public_key" not in check  # check mode makes no key
    assert real["fingerprint"] == again["fingerprint"]
    assert real["changed_reason"] == f"{path} does not exist"
    assert again["changed_reason"] is None
    loaded = _crypto.load_private_key(path.read_bytes(), options.get("passphrase"))
    assert _crypto.public_key_fingerprint(loaded.key) == real["fingerprint"]
    assert real["public_key"] == _crypto.public_key_pem(loaded.key)
    assert real["type"] == options.get("type", "ec")


def test_private_key_check_mode_never_writes(run_module, tmp_path):
    path = tmp_path / "key.pem"
    result = run_module(private_key, {"path": str(path)}, check=True)
    assert result["changed"] is True
    assert not path.exists()
    assert os.listdir(tmp_path) == []


def test_private_key_is_0600_whatever_the_umask(run_module, tmp_path):
    path = tmp_path / "key.pem"
    old = os.umask(0)
    try:
        run_module(private_key, {"path": str(path)})
    finally:
        os.umask(old)
    assert _mode(path) == 0o600


def test_private_key_fixes_loose_mode(run_module, tmp_path):
    path = tmp_path / "key.pem"
    run_module(private_key, {"path": str(path)})
    before = _sha256(path)
    os.chmod(path, 0o644)
    result = run_module(private_key, {"path": str(path)})
    assert result["changed"] is True
    assert result["changed_reason"] == "file attributes differ"
    assert (_mode(path), _sha256(path)) == (0o600, before)


def test_private_key_result_has_no_private_material(run_module, tmp_path):
    result = run_module(private_key, {"path": str(tmp_path / "k"), "passphrase": "s3cret"})
    text = json.dumps(result)
    assert "PRIVATE KEY" not in text
    assert "s3cret" not in text
    assert "-----BEGIN" not in json.dumps(result["diff"])


def test_private_key_curve_change_regenerates(run_module, tmp_path):
    path = str(tmp_path / "key.pem")
    first = run_module(private_key, {"path": path})
    check = run_module(private_key, {"path": path, "curve": "P-384"}, check=True)
    assert check["changed"] is True
    assert check["changed_reason"] == "key is EC P-256, wanted EC P-384"
    assert check["diff"]["before"]["curve"] == "P-256"
    assert check["diff"]["after"]["curve"] == "P-384"
    assert run_module(private_key, {"path": path})["fingerprint"] == first["fingerprint"]
    changed = run_module(private_key, {"path": path, "curve": "P-384"})
    assert changed["changed"] is True
    assert changed["fingerprint"] != first["fingerprint"]
    assert (changed["curve"], changed["size"]) == ("P-384", 384)


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (b"this is not a key\n", {}, "not a readable private key"),
        (None, {"passphrase": "wrong"}, "cannot decrypt"),
        (None, {"regenerate": "fail", "curve": "P-384"}, "regenerate=fail"),
    ],
)
def test_private_key_bad_input_leaves_file_identical(run_module, tmp_path, content, args, message):
    path = tmp_path / "key.pem"
    if content is None:
        run_module(private_key, {"path": str(path), "passphrase": "right"})
        if "passphrase" not in args:
            args = dict(args, passphrase="right")
    else:
        path.write_bytes(content)
    before = _sha256(path)
    for check in (True, False):
        result = run_module(private_key, dict(args, path=str(path)), check=check)
        assert result["failed"] is True
        assert message in result["msg"]
        assert "Traceback" not in result["msg"]
        assert _sha256(path) == before


def test_private_key_replace_unreadable(run_module, tmp_path):
    path = tmp_path / "key.pem"
    path.write_bytes(b"corrupt")
    result = run_module(private_key, {"path": str(path), "replace_unreadable": True})
    assert result["changed"] is True
    assert "replace_unreadable=true" in result["changed_reason"]
    assert _crypto.load_private_key(path.read_bytes()).format == "pkcs8"


def test_private_key_regenerate_always_and_never(run_module, tmp_path):
    path = str(tmp_path / "key.pem")
    first = run_module(private_key, {"path": path})
    always = run_module(private_key, {"path": path, "regenerate": "always"})
    assert always["changed"] and always["fingerprint"] != first["fingerprint"]
    never = run_module(private_key, {"path": path, "regenerate": "never", "type": "ed25519"})
    assert never["changed"] is False
    assert never["fingerprint"] == always["fingerprint"]
    assert "kept (regenerate=never)" in json.dumps(never.get("warnings"))


def test_private_key_absent(run_module, tmp_path):
    path = tmp_path / "key.pem"
    run_module(private_key, {"path": str(path)})
    check = run_module(private_key, {"path": str(path), "state": "absent"}, check=True)
    assert check["changed"] is True and path.exists()
    real = run_module(private_key, {"path": str(path), "state": "absent"})
    assert real["changed"] is True and not path.exists()
    assert run_module(private_key, {"path": str(path), "state": "absent"})["changed"] is False


# ----------------------------------------------------------------------------- csr


@pytest.fixture
def key_path(tmp_path):
    path = tmp_path / "web.key"
    path.write_bytes(_crypto.serialize_private_key(ec.generate_private_key(ec.SECP256R1())))
    return path


CSR_ARGS = {
    "common_name": "web.example.com",
    "subject_alt_names": ["DNS:web.example.com", "IP:10.0.0.5", "IP:2001:db8::5"],
    "profile": "server",
}


def test_csr_four_runs_with_path(run_module, tmp_path, key_path):
    path = tmp_path / "web.csr"
    args = dict(CSR_ARGS, privatekey_path=str(key_path), path=str(path))
    check, real, check2, again = four_runs(run_module, csr, args)
    assert not os.path.exists(tmp_path / "never") and check["csr"].startswith("-----BEGIN")
    assert again["csr"] == real["csr"] == path.read_text() == check2["csr"]
    assert real["subject_alt_names"] == ["DNS:web.example.com", "IP:10.0.0.5", "IP:2001:db8::5"]
    assert real["extended_key_usage"] == ["serverAuth"]
    assert "-----BEGIN" not in json.dumps(real["diff"])


def test_csr_without_path_returns_csr_and_changes_nothing(run_module, tmp_path, key_path):
    result = run_module(csr, dict(CSR_ARGS, privatekey_path=str(key_path)))
    assert result["changed"] is False
    loaded = _crypto.load_csr(result["csr"].encode())
    assert loaded.is_signature_valid
    assert sorted(os.listdir(tmp_path)) == ["web.key"]


def test_csr_san_added_rewrites(run_module, tmp_path, key_path):
    path = tmp_path / "web.csr"
    args = dict(CSR_ARGS, privatekey_path=str(key_path), path=str(path))
    run_module(csr, args)
    more = dict(args, subject_alt_names=[*CSR_ARGS["subject_alt_names"], "DNS:api.example.com"])
    check = run_module(csr, more, check=True)
    assert check["changed"] is True
    assert check["changed_reason"] == "SANs differ: +DNS:api.example.com"
    assert "DNS:api.example.com" in check["diff"]["after"]["subject_alt_names"]
    assert "DNS:api.example.com" not in check["diff"]["before"]["subject_alt_names"]
    assert run_module(csr, more)["changed"] is True
    assert run_module(csr, more)["changed"] is False


@pytest.mark.parametrize(
    ("san", "message"),
    [
        ("IP:999.1.1.1", "SAN 'IP:999.1.1.1' is not a valid IPv4 or IPv6 address"),
        ("DNS:", "SAN 'DNS:': the DNS name is empty"),
        ("DNS:api.*.example.com", "SAN 'DNS:api.*.example.com': a wildcard must be"),
        ("email:nobody", "SAN 'email:nobody' is not a valid email address"),
        ("URI:not a uri", "SAN 'URI:not a uri' is not a valid URI"),
    ],
)
def test_csr_bad_san_fails_cleanly(run_module, tmp_path, key_path, san, message):
    path = tmp_path / "web.csr"
    args = dict(CSR_ARGS, privatekey_path=str(key_path), path=str(path))
    run_module(csr, args)
    before = _sha256(path)
    result = run_module(csr, dict(args, subject_alt_names=[san]))
    assert result["failed"] is True
    assert result["msg"].startswith(message)
    assert _sha256(path) == before


def test_csr_missing_key_fails(run_module, tmp_path):
    result = run_module(csr, dict(CSR_ARGS, privatekey_path=str(tmp_path / "none.key")))
    assert result["failed"] is True
    assert result["msg"] == f"private key {tmp_path / 'none.key'} does not exist"


def test_csr_new_key_rewrites(run_module, tmp_path, key_path):
    path = tmp_path / "web.csr"
    args = dict(CSR_ARGS, privatekey_path=str(key_path), path=str(path))
    run_module(csr, args)
    key_path.write_bytes(_crypto.serialize_private_key(ec.generate_private_key(ec.SECP384R1())))
    result = run_module(csr, args)
    assert result["changed"] is True
    assert "CSR does not match the private key" in result["changed_reason"]


# ------------------------------------------------------------------ certificate_info


@pytest.fixture
def deployed(tmp_path):
    """A host with a key, a certificate valid for 24h (18h left), chain and trust bundle."""
    key = ec.generate_private_key(ec.SECP256R1())
    ca = make_ca("Host")
    now = datetime.now(timezone.utc)
    cert = ca.issue(
        key.public_key(),
        not_before=now - timedelta(hours=6),
        lifetime=timedelta(hours=24),
    )
    files = {
        "key": tmp_path / "web.key",
        "cert": tmp_path / "web.crt",
        "chain": tmp_path / "web.fullchain.crt",
        "bundle": tmp_path / "ca-bundle.pem",
    }
    files["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files["cert"].write_bytes(pem(cert))
    files["chain"].write_bytes(pem(cert) + pem(ca.intermediate))
    files["bundle"].write_bytes(pem(ca.root))
    return files


def _info_args(files, **extra):
    args = {
        "path": str(files["cert"]),
        "privatekey_path": str(files["key"]),
        "chain_path": str(files["chain"]),
        "ca_path": str(files["bundle"]),
        "common_name": "web.example.com",
        "subject_alt_names": ["DNS:web.example.com"],
        "profile": "server",
        "renew_before": "0.33",
    }
    args.update(extra)
    return args


def test_certificate_info_valid(run_module, deployed):
    for check in (True, False):
        result = run_module(certificate_info, _info_args(deployed), check=check)
        assert result["changed"] is False
        assert result["needs_signing"] is False, result["reasons"]
        assert result["reason"] == "certificate is valid"
        assert result["matches_key"] is True
        assert result["chains_to_trust"] is True
        assert result["profile"] == "server"
        assert 0.74 < result["remaining_fraction"] <= 0.75
        assert result["subject_alt_names"] == ["DNS:web.example.com"]


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (
            {"subject_alt_names": ["DNS:web.example.com", "DNS:api.example.com"]},
            "SANs differ: +DNS:api.example.com",
        ),
        ({"profile": "client"}, "profile is server, wanted client"),
        ({"common_name": "api.example.com"}, "subject common_name differs"),
        ({"renew_before": "20h"}, "certificate expires in 17h 59m, below the renewal threshold"),
        ({"renew_before": 0.8}, "certificate expires in 17h 59m, below the renewal threshold"),
    ],
)
def test_certificate_info_needs_signing(run_module, deployed, extra, reason):
    result = run_module(certificate_info, _info_args(deployed, **extra))
    assert result["needs_signing"] is True
    assert result["reason"].startswith(reason), result["reason"]


def test_certificate_info_missing_cert_and_key(run_module, deployed):
    deployed["cert"].unlink()
    result = run_module(certificate_info, _info_args(deployed))
    assert (result["needs_signing"], result["reason"], result["exists"]) == (True, "missing", False)


def test_certificate_info_missing_key_needs_signing(run_module, deployed):
    deployed["key"].unlink()
    result = run_module(certificate_info, _info_args(deployed))
    assert result["needs_signing"] is True
    assert result["reason"].startswith(f"private key {deployed['key']} is missing")


def test_certificate_info_other_key(run_module, deployed):
    deployed["key"].write_bytes(
        _crypto.serialize_private_key(ec.generate_private_key(ec.SECP256R1()))
    )
    result = run_module(certificate_info, _info_args(deployed))
    assert result["reason"] == "certificate does not match key"
    assert result["matches_key"] is False


def test_certificate_info_untrusted(run_module, deployed):
    deployed["bundle"].write_bytes(pem(make_ca("Elsewhere").root))
    result = run_module(certificate_info, _info_args(deployed))
    assert result["needs_signing"] is True
    assert result["reason"].startswith("certificate does not chain to the trust bundle")


def test_certificate_info_corrupt_cert_needs_signing(run_module, deployed):
    deployed["cert"].write_bytes(b"garbage")
    result = run_module(certificate_info, _info_args(deployed))
    assert result["needs_signing"] is True
    assert result["reason"].startswith("certificate unreadable")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"renew_before": "soon"}, "renew_before 'soon' must be a fraction"),
        ({"subject_alt_names": ["IP:999.1.1.1"]}, "SAN 'IP:999.1.1.1' is not a valid"),
        ({"ca_path": "/nonexistent/bundle.pem"}, "trust bundle /nonexistent/bundle.pem does"),
    ],
)
def test_certificate_info_bad_input_fails(run_module, deployed, extra, message):
    result = run_module(certificate_info, _info_args(deployed, **extra))
    assert result["failed"] is True
    assert result["msg"].startswith(message)


def test_certificate_info_full_chain_in_path(run_module, deployed):
    deployed["cert"].write_bytes(deployed["chain"].read_bytes())
    result = run_module(certificate_info, _info_args(deployed, chain_path=None))
    assert result["chains_to_trust"] is True, result["trust_message"]
    assert result["needs_signing"] is False
    without_chain = dict(_info_args(deployed, chain_path=None))
    deployed["cert"].write_bytes(
        deployed["chain"].read_bytes().split(b"-----END CERTIFICATE-----")[0]
        + b"-----END CERTIFICATE-----\n"
    )
    result = run_module(certificate_info, without_chain)
    assert result["chains_to_trust"] is False
    assert result["reason"].startswith("certificate does not chain to the trust bundle: no issuer")


def test_certificate_info_serial_is_what_nginx_shows(run_module, tmp_path):
    # make_ca gives the intermediate serial 2: NGINX's $ssl_client_serial shows "02".
    ca = make_ca("Serial")
    path = tmp_path / "intermediate.crt"
    path.write_bytes(pem(ca.intermediate))
    result = run_module(certificate_info, {"path": str(path)})
    assert result["serial"] == "02"
    assert result["serial_number"] == 2
    assert result["serial"] == _crypto.serial_hex(ca.intermediate.serial_number)
