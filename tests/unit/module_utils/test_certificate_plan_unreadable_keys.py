# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A key file that holds no loadable key: a clear error by default, a new key only when asked.

``_certificate_plan`` directly, and through the ``certificate_plan`` module in-process, with
real files and a test CA.
"""

from __future__ import annotations

import hashlib
import os

import pytest
from cryptography import x509
from mtls_testlib import pem

from ansible_collections.mtls.rollout.plugins.module_utils import _certificate_plan, _crypto
from ansible_collections.mtls.rollout.plugins.modules import certificate_plan

DAMAGED = b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"


def _snapshot(folder) -> dict[str, str]:
    return {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
        for name in sorted(os.listdir(folder))
        if (folder / name).is_file()
    }


@pytest.fixture
def folder(tmp_path, test_ca):
    """A host folder with a damaged key beside an old certificate of another key."""
    path = tmp_path / "mtls"
    path.mkdir()
    old_key = _crypto.generate_private_key(_crypto.KeySpec("ec", "P-256", 2048))
    old = test_ca.issue(old_key.public_key(), common_name="web.example.com")
    (path / "web.crt").write_bytes(pem(old) + pem(test_ca.intermediate))
    (path / "web.key").write_bytes(DAMAGED)
    (path / "ca-bundle.pem").write_bytes(pem(test_ca.root))
    return path


def _args(folder, test_ca, **extra):
    args = {
        "items": [
            {
                "name": "web",
                "common_name": "web.example.com",
                "subject_alt_names": ["DNS:web.example.com"],
                "key_path": str(folder / "web.key"),
                "cert_path": str(folder / "web.crt"),
            }
        ],
        "trust_bundle": pem(test_ca.root).decode(),
        "trust_bundle_path": str(folder / "ca-bundle.pem"),
        "certificate_dir": str(folder),
    }
    args.update(extra)
    return args


def _plan(folder, test_ca, **extra):
    args = _args(folder, test_ca)
    items = [
        dict(
            item,
            **{
                k: v["default"]
                for k, v in _certificate_plan.ITEM_OPTIONS.items()
                if "default" in v and k not in item
            },
        )
        for item in args["items"]
    ]
    return _certificate_plan.make_plan(
        items, str(folder), args["trust_bundle_path"], args["trust_bundle"], **extra
    )


def test_by_default_a_damaged_key_fails_naming_the_file_and_the_option(folder, test_ca):
    with pytest.raises(_certificate_plan.UnreadableKey) as raised:
        _plan(folder, test_ca)
    message = str(raised.value)
    assert str(folder / "web.key") in message
    assert "left untouched" in message
    assert "replace_unreadable_keys" in message


def test_when_asked_a_damaged_key_is_planned_as_a_new_key_and_a_new_certificate(folder, test_ca):
    plan = _plan(folder, test_ca, replace_unreadable_keys=True)
    item = plan.items[0]
    assert item.key_action == "create"
    assert item.needs_signing
    assert item.before["key"] == "unreadable"
    assert "replaced with a new key (replace_unreadable_keys)" in item.reason
    assert str(folder / "web.key") in item.reason


def test_module_fails_by_default_and_changes_nothing(run_module, folder, test_ca):
    before = _snapshot(folder)
    for check in (True, False):
        result = run_module(certificate_plan, _args(folder, test_ca), check=check)
        assert result["failed"] is True
        assert "web.key" in result["msg"] and "replace_unreadable_keys" in result["msg"]
        assert "Traceback" not in result["msg"]
    assert _snapshot(folder) == before


def test_module_replaces_the_damaged_key_only_when_asked(run_module, folder, test_ca):
    args = _args(folder, test_ca, replace_unreadable_keys=True)
    before = _snapshot(folder)
    check = run_module(certificate_plan, args, check=True)
    assert check["changed"] is True and check["needs_signing"] == ["web"]
    assert _snapshot(folder) == before  # check mode predicts, writes nothing

    result = run_module(certificate_plan, args)
    assert result["changed"] is True and result["needs_signing"] == ["web"]
    key_bytes = (folder / "web.key").read_bytes()
    key = _crypto.load_private_key(key_bytes).key
    assert os.stat(folder / "web.key").st_mode & 0o777 == 0o600
    csr = x509.load_pem_x509_csr(result["items"][0]["request"]["csr"].encode())
    assert _crypto.same_public_key(csr.public_key(), key)
    # The old certificate stays until the new one is issued and installed.
    assert _snapshot(folder)["web.crt"] == before["web.crt"]
    assert not (folder / "web.key.next").exists()

    # Now readable: the next run keeps that key and still asks for its certificate.
    again = run_module(certificate_plan, args)
    assert again["changed"] is False and again["needs_signing"] == ["web"]
    assert (folder / "web.key").read_bytes() == key_bytes


def test_a_key_path_that_cannot_be_read_is_never_replaced(run_module, folder, test_ca):
    # Not a damaged key but an I/O problem (here a folder in its place): always an error.
    (folder / "web.key").unlink()
    (folder / "web.key").mkdir()
    before = _snapshot(folder)
    result = run_module(certificate_plan, _args(folder, test_ca, replace_unreadable_keys=True))
    assert result["failed"] is True and "web.key" in result["msg"]
    assert (folder / "web.key").is_dir()
    assert _snapshot(folder) == before
