# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The certificate lock: an exclusive ``flock`` on the folder of an item's key.

Three parties read and change an item's key, ``<key>.next`` and certificate: the
``certificate_plan`` and ``certificate_install`` modules, and the renewal program that the
item's systemd timer runs. Each holds this lock while it does, so that none of them acts on
another's half-done steps (a staged key removed while its certificate is being fetched, two
certificates written over each other, a key renamed beside the wrong certificate).

Why the folder, opened read-only, and ``flock``:

* no lock file: nothing to create in a folder that may not be ours to write, nothing left
  behind, nothing for ``state: absent`` to clean up;
* never stale: the kernel drops the lock when its holder's process ends, however it ends
  (a crash, ``kill -9``, a host stopped mid-play);
* the folder exists whenever there is something to protect. All items of a folder share its
  lock; that is coarser than one lock per item, but each holder keeps it for seconds;
* ``/proc/locks`` lists who holds it, so a message can name the process.

``flock`` locks are advisory and local: a folder on NFS is not supported.

Every holder keeps the lock only while it reads and writes files, never while it waits for
the network: the renewal program asks the CA between two short holds. So a hold lasts
milliseconds to seconds (the certificate role generating large RSA keys), and waiting is
bounded by :data:`LOCK_WAIT`: :func:`hold` tries without blocking (``LOCK_NB``) until a
deadline, then raises :class:`LockBusy`. Several folders are taken in the order of their real
paths, so two holders never wait for each other.

Only the standard library is used, and the code runs on Python 3.8: the renewal program
imports it on the host.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from typing import Iterable, Iterator

__all__ = ["LOCK_WAIT", "LockBusy", "LockError", "failure", "folder_of", "hold", "holder_of"]

POLL_SECONDS = 0.1
# How long anyone waits for the lock, in seconds: far longer than any holder keeps it.
LOCK_WAIT = 120.0
# flock on a folder opened read-only: what a filesystem without it (NFS) answers.
_NO_FLOCK = (errno.EBADF, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL)


class LockError(Exception):
    """The lock could not be taken; the message names the folder."""


class LockBusy(LockError):
    """Another process held the lock for longer than the wait allowed."""

    def __init__(self, folder: str, waited: float, holder: str | None) -> None:
        by = f" by {holder}" if holder else ""
        super().__init__(
            f"the certificate lock on {folder} (an flock on that folder) is still held{by}"
            f" after {_seconds(waited)}"
        )
        self.folder = folder
        self.holder = holder


def failure(exc: LockError, unchanged: str) -> str:
    """The message for a lock not taken: who holds it, what was left ``unchanged``, what to do."""
    if not isinstance(exc, LockBusy):
        return f"{exc}; {unchanged}"
    return (
        f"{exc}: a renewal timer (systemctl list-units 'mtls-renew-*') or another run of the"
        f" certificate role is changing certificates there; {unchanged}. Run again once it"
        " has finished."
    )


def folder_of(key_path: str) -> str:
    """The folder whose lock guards the key at ``key_path`` (and its ``.next``)."""
    return os.path.dirname(os.path.abspath(key_path))


@contextlib.contextmanager
def hold(folders: Iterable[str], wait: float) -> Iterator[None]:
    """Hold the lock of each existing folder in ``folders`` inside the ``with`` block.

    A folder that does not exist holds nothing yet and is skipped. Raises
    :class:`LockBusy` when the locks are not all taken within ``wait`` seconds (then none
    is held), :class:`LockError` when a folder cannot be opened.
    """
    deadline = time.monotonic() + max(wait, 0.0)
    handles: list[int] = []
    seen: set[tuple[int, int]] = set()
    try:
        for folder in sorted({os.path.realpath(f) for f in folders}):
            handle = _open(folder)
            if handle is None:
                continue
            handles.append(handle)
            info = os.fstat(handle)
            if (info.st_dev, info.st_ino) in seen:  # the same folder by another path
                continue
            seen.add((info.st_dev, info.st_ino))
            _take(handle, folder, deadline, wait)
        yield
    finally:
        for handle in reversed(handles):
            os.close(handle)  # releases its lock


def _open(folder: str) -> int | None:
    try:
        return os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except PermissionError:
        raise LockError(
            f"cannot open {folder} to take the certificate lock: this user may not read that"
            " folder (run the certificate role with become, or let its user read the folder)"
        ) from None
    except OSError as exc:
        raise LockError(
            f"cannot open {folder} to take the certificate lock: {exc.strerror or exc}"
        ) from None


def _take(handle: int, folder: str, deadline: float, wait: float) -> None:
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno in _NO_FLOCK:
                raise LockError(
                    f"cannot take the certificate lock on {folder}: its filesystem has no flock"
                    f" ({exc.strerror or exc}; NFS, for example); keep keys on a local filesystem"
                ) from None
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise LockError(
                    f"cannot take the certificate lock on {folder}: {exc.strerror or exc}"
                ) from None
        left = deadline - time.monotonic()
        if left <= 0:
            raise LockBusy(folder, wait, holder_of(handle))
        _pause(min(POLL_SECONDS, left))


def _pause(seconds: float) -> None:
    """Wait between two tries (a seam for the tests, which release the lock here)."""
    time.sleep(seconds)


def holder_of(handle: int) -> str | None:
    """Who holds the flock on the open folder ``handle``, as ``/proc/locks`` tells: the
    process, its command name and its systemd unit. ``None`` when it does not tell."""
    info = os.fstat(handle)
    wanted = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as stream:
            lines = stream.read().splitlines()
    except OSError:
        return None
    for line in lines:
        # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:56789 0 EOF"; waiters have "->" after the number.
        fields = line.split()
        if len(fields) < 6 or fields[1] != "FLOCK" or fields[5] != wanted:
            continue
        pid = fields[4]
        if not pid.isdigit() or pid == "0":
            return None
        return _describe(pid)
    return None


def _describe(pid: str) -> str:
    """``process 1234 (python3, mtls-renew-web.service)``: the name and unit only, never
    the command line, which may carry anything."""
    facts = [_proc_text(pid, "comm").strip()]
    for line in _proc_text(pid, "cgroup").splitlines():
        unit = line.split(":", 2)[-1].rsplit("/", 1)[-1]
        if unit.endswith((".service", ".scope")):
            facts.append(unit)
            break
    facts = [fact for fact in facts if fact]
    return f"process {pid}" + (f" ({', '.join(facts)})" if facts else "")


def _proc_text(pid: str, name: str) -> str:
    try:
        with open(f"/proc/{pid}/{name}", encoding="utf-8", errors="replace") as stream:
            return stream.read()
    except OSError:  # the process has gone, or /proc hides it
        return ""


def _seconds(value: float) -> str:
    return f"{value:g} s"
