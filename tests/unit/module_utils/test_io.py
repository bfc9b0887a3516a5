# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_io: atomic writes with safe modes, reads, removal (with a real AnsibleModule)."""

from __future__ import annotations

import os
import stat

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.mtls.rollout.plugins.module_utils import _io


@pytest.fixture
def module(tmp_path):
    with patch_module_args({"path": str(tmp_path / "unused")}):
        yield AnsibleModule(argument_spec={"path": {"type": "path"}}, add_file_common_args=True)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_secret_file_is_0600_whatever_the_umask(module, tmp_path):
    target = tmp_path / "key.pem"
    old = os.umask(0)
    try:
        assert _io.write_file(module, str(target), b"secret") is True
    finally:
        os.umask(old)
    assert target.read_bytes() == b"secret"
    assert _mode(target) == 0o600


def test_public_file_gets_umask_default(module, tmp_path):
    target = tmp_path / "web.csr"
    old = os.umask(0o027)
    try:
        _io.write_file(module, str(target), b"csr", secret=False)
    finally:
        os.umask(old)
    assert _mode(target) == 0o640


def test_requested_mode_is_applied(module, tmp_path):
    target = tmp_path / "cert.pem"
    _io.write_file(module, str(target), b"one", {"mode": "0644"})
    assert _mode(target) == 0o644
    _io.write_file(module, str(target), b"two", {"mode": "0640"})
    assert (target.read_bytes(), _mode(target)) == (b"two", 0o640)


def test_no_temporary_files_are_left(module, tmp_path):
    _io.write_file(module, str(tmp_path / "a"), b"x")
    _io.write_file(module, str(tmp_path / "a"), b"y")
    assert sorted(os.listdir(tmp_path)) == ["a"]


def test_missing_folder_is_a_clear_error(module, tmp_path):
    with pytest.raises(_io.FileIOError, match=r"folder .*nope does not exist"):
        _io.write_file(module, str(tmp_path / "nope" / "a"), b"x")


def test_read_bytes(tmp_path):
    target = tmp_path / "f"
    assert _io.read_bytes(str(target)) is None
    target.write_bytes(b"abc")
    assert _io.read_bytes(str(target)) == b"abc"
    with pytest.raises(_io.FileIOError, match="larger than 2 bytes"):
        _io.read_bytes(str(target), max_size=2)
    with pytest.raises(_io.FileIOError, match="not a regular file"):
        _io.read_bytes(str(tmp_path))


def test_remove_file(tmp_path):
    target = tmp_path / "f"
    target.write_bytes(b"x")
    assert _io.remove_file(str(target)) is True
    assert not target.exists()
    assert _io.remove_file(str(target)) is False
