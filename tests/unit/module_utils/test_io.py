# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_io: atomic writes with safe modes, reads, removal (with a real AnsibleModule)."""

from __future__ import annotations

import grp
import os
import pwd
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


# ---------------------------------------------- owner and mode before the rename


@pytest.fixture
def at_rename(monkeypatch):
    """The temporary file's mode and owner at the moment it is renamed over the target."""
    seen = []
    replace = os.replace

    def record(source, target):
        info = os.lstat(source)
        seen.append((stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid))
        replace(source, target)

    monkeypatch.setattr(_io.os, "replace", record)
    return seen


@pytest.mark.parametrize(("mode", "wanted"), [("0644", 0o644), (0o640, 0o640)])
def test_the_mode_is_set_before_the_rename(module, tmp_path, at_rename, mode, wanted):
    target = tmp_path / "cert.pem"
    target.write_bytes(b"old")
    _io.write_file(module, str(target), b"new", {"mode": mode}, secret=False)
    assert at_rename == [(wanted, os.geteuid(), os.getegid())]
    assert (target.read_bytes(), _mode(target)) == (b"new", wanted)


def test_a_new_public_file_without_a_mode_has_the_umask_default_before_the_rename(
    module, tmp_path, at_rename
):
    old = os.umask(0o027)
    try:
        _io.write_file(module, str(tmp_path / "web.csr"), b"csr", secret=False)
    finally:
        os.umask(old)
    assert [mode for mode, _uid, _gid in at_rename] == [0o640]


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_owner_and_group_are_set_before_the_rename(module, tmp_path, at_rename):
    nobody = pwd.getpwnam("nobody")
    group = grp.getgrgid(nobody.pw_gid).gr_name
    target = tmp_path / "web.key"
    _io.write_file(module, str(target), b"key", {"owner": "nobody", "group": group})
    assert at_rename == [(0o600, nobody.pw_uid, nobody.pw_gid)]
    info = os.stat(target)
    assert (info.st_uid, info.st_gid, _mode(target)) == (nobody.pw_uid, nobody.pw_gid, 0o600)
    # By number too, as Ansible takes them.
    _io.write_file(module, str(target), b"key2", {"owner": "0", "group": 0, "mode": "0640"})
    assert at_rename[1] == (0o640, 0, 0)


def test_nothing_is_left_for_set_fs_attributes_to_change(module, tmp_path, monkeypatch):
    """Owner and mode are right before the rename: the attributes pass after it changes
    nothing of them (and keeps doing what a descriptor cannot)."""
    found = []
    set_attributes = module.set_fs_attributes_if_different

    def record(args, changed, *rest, **kwargs):
        found.append(set_attributes(args, False, *rest, **kwargs))
        return changed or found[-1]

    monkeypatch.setattr(module, "set_fs_attributes_if_different", record)
    target = tmp_path / "cert.pem"
    owner = pwd.getpwuid(os.geteuid()).pw_name
    _io.write_file(module, str(target), b"one", {"mode": "0644", "owner": owner}, secret=False)
    _io.write_file(module, str(target), b"two", {"mode": "0640", "owner": owner}, secret=False)
    assert found == [False, False]
    assert (target.read_bytes(), _mode(target)) == (b"two", 0o640)


def test_owner_group_and_octal_mode_never_go_through_the_path(module, tmp_path, monkeypatch):
    # After the rename, a user who can write the folder could swap the file for a symlink:
    # a chown or chmod by path would then reach the symlink's target.
    passed = []
    monkeypatch.setattr(
        module, "set_fs_attributes_if_different", lambda args, changed: passed.append(args)
    )
    owner = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    target = tmp_path / "cert.pem"
    _io.write_file(module, str(target), b"x", {"mode": "0640", "owner": owner, "group": group})
    assert [(a["mode"], a["owner"], a["group"]) for a in passed] == [(None, None, None)]
    assert passed[0]["path"] == str(target)


def test_a_symbolic_mode_is_still_applied_after_the_rename(module, tmp_path):
    # A regression guard (the old code did this too): a mode write_atomic cannot take.
    target = tmp_path / "cert.pem"
    _io.write_file(module, str(target), b"x", {"mode": "u=rw,g=r,o=r"}, secret=False)
    assert _mode(target) == 0o644


@pytest.mark.parametrize(("what", "named"), [("owner", "user"), ("group", "group")])
def test_an_unknown_owner_or_group_fails_before_anything_is_written(module, tmp_path, what, named):
    target = tmp_path / "cert.pem"
    target.write_bytes(b"old")
    message = f"cannot write {target}: there is no {named} 'no-such-name-here'"
    with pytest.raises(_io.FileIOError, match=message):
        _io.write_file(module, str(target), b"new", {what: "no-such-name-here"})
    assert target.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["cert.pem"]


def test_write_atomic_without_ansible(tmp_path, at_rename):
    """The primitive the renewal program uses, where Ansible is not installed."""
    target = tmp_path / "web.crt"
    _io.write_atomic(str(target), b"pem", mode=0o640)
    assert at_rename == [(0o640, os.geteuid(), os.getegid())]
    assert target.read_bytes() == b"pem"
    with pytest.raises(_io.FileIOError, match=r"folder .*nope does not exist"):
        _io.write_atomic(str(tmp_path / "nope" / "x"), b"x")
