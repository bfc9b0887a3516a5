# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_item_lock: the certificate lock, against another real process that holds it."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from lock_helpers import LockHolder, on_first_wait

from ansible_collections.mtls.rollout.plugins.module_utils import _item_lock


def _free(folder) -> bool:
    """Whether another open of ``folder`` can take the lock now."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(handle)
    return True


def test_held_inside_the_block_and_released_after(tmp_path):
    with _item_lock.hold([str(tmp_path)], wait=0):
        assert not _free(tmp_path)
    assert _free(tmp_path)


def test_released_when_the_block_raises(tmp_path):
    with pytest.raises(RuntimeError), _item_lock.hold([str(tmp_path)], wait=0):
        raise RuntimeError("inside")
    assert _free(tmp_path)


def test_waits_for_another_process_then_takes_it(tmp_path, monkeypatch):
    with LockHolder(tmp_path) as holder:
        waits = on_first_wait(monkeypatch, holder.release)
        with _item_lock.hold([str(tmp_path)], wait=30):
            assert not _free(tmp_path)
    assert len(waits) >= 1


def test_gives_up_after_the_bound_naming_the_holder(tmp_path):
    with LockHolder(tmp_path) as holder:
        started = time.monotonic()
        with pytest.raises(_item_lock.LockBusy) as caught, _item_lock.hold([str(tmp_path)], 0.3):
            pytest.fail("the block ran without the lock")
        waited = time.monotonic() - started
    assert waited >= 0.3
    message = str(caught.value)
    assert message.startswith(f"the certificate lock on {tmp_path} (an flock on that folder)")
    assert f"is still held by process {holder.pid} (" in message
    assert message.endswith(" after 0.3 s")
    assert caught.value.folder == str(tmp_path)


def test_none_of_several_is_kept_when_one_is_busy(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    busy = pytest.raises(_item_lock.LockBusy, match=str(second))
    with LockHolder(second), busy, _item_lock.hold([str(second), str(first)], wait=0.1):
        pytest.fail("the block ran without the lock")
    assert _free(first)


def test_a_missing_folder_is_skipped_and_one_folder_by_two_paths_is_taken_once(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    folders = [str(tmp_path / "missing"), str(tmp_path / "link"), str(real), str(real) + "/"]
    with _item_lock.hold(folders, wait=0):
        assert not _free(real)
    assert _free(real)


def test_a_folder_that_cannot_be_opened_is_a_lock_error(tmp_path):
    plain = tmp_path / "file"
    plain.write_text("not a folder\n")
    refused = pytest.raises(_item_lock.LockError, match=f"cannot open {plain} to take")
    with refused, _item_lock.hold([str(plain)], wait=0):
        pytest.fail("the block ran without the lock")


def test_folder_of_is_the_key_s_folder(tmp_path):
    assert _item_lock.folder_of(str(tmp_path / "web.key")) == str(tmp_path)


def test_a_folder_the_user_may_not_read_says_so(tmp_path):
    # The lock opens the folder for reading: a user who may only pass through it gets a
    # message that says what to do, not "Permission denied" alone. As root (who reads any
    # folder) the check runs as nobody, in a folder of /tmp that nobody can reach.
    root = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(dir="/tmp")) if root else tmp_path
    try:
        base.chmod(0o711)
        folder = base / "keys"
        folder.mkdir()
        folder.chmod(0o711 if root else 0o311)
        script = (
            "import importlib.util\n"
            f"spec = importlib.util.spec_from_file_location('lock', {_item_lock.__file__!r})\n"
            "lock = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(lock)\n"
            "try:\n"
            f"    with lock.hold([{str(folder)!r}], 0):\n"
            "        print('taken')\n"
            "except lock.LockError as exc:\n"
            "    print(exc)\n"
        )
        command = [sys.executable, "-c", script]
        if root:
            nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
            command = [*nobody, "/usr/bin/python3", "-c", script]
        said = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finally:
        if root:
            shutil.rmtree(base)
    assert said.strip() == (
        f"cannot open {folder} to take the certificate lock: this user may not read that"
        " folder (run the certificate role with become, or let its user read the folder)"
    )
