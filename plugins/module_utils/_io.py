# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""File helpers for mtls.rollout: atomic writes with safe modes, and reads.

Every file is written by :func:`write_atomic`:

1. a temporary file is created with mode ``0600`` in the target's own folder
   (``tempfile.mkstemp``), so secrets are never readable by others, not even for
   a moment, and the final rename stays on one filesystem;
2. the content is written;
3. the file gets its final owner, group and mode through the open descriptor (``fchown``,
   ``fchmod``), never by name: the folder may be writable by a service's user, who could
   swap the temporary file for a symlink and have root chown or chmod its target;
4. it is flushed to disk (``fsync``);
5. it is renamed over the target with :func:`os.replace` (atomic), so the target has its
   final content, owner and mode from the moment it exists.

Modules call :func:`write_file`, which takes the task's file arguments, resolves the owner and
group names and the octal mode for step 3, gives the temporary file the target's default
SELinux context, and afterwards lets ``module.set_fs_attributes_if_different`` apply what a
descriptor cannot (SELinux context, ``chattr`` attributes, a symbolic mode); owner and mode
are already right then. The renewal program, which runs without Ansible, calls
:func:`write_atomic` itself (``_renewal.write_like``).

``AnsibleModule.atomic_move`` is not used for the rename because it gives a *new* file the
mode ``0666 & ~umask`` before the attributes are applied, which would expose a private key.

Nothing here decides whether to write: callers check ``module.check_mode`` first. Only the
standard library is used, and the code runs on Python 3.8 (the renewal program imports it).
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import stat
import tempfile
from typing import Any, Callable

__all__ = [
    "FileIOError",
    "read_bytes",
    "remove_file",
    "set_attributes",
    "write_atomic",
    "write_file",
]


# What AnsibleModule.set_fs_attributes_if_different expects in its file_args.
_FILE_ARG_KEYS = (
    "mode",
    "owner",
    "group",
    "seuser",
    "serole",
    "selevel",
    "setype",
    "secontext",
    "attributes",
)


class FileIOError(Exception):
    """A file could not be read, written or removed. The message names the path."""


def read_bytes(path: str, max_size: int = 1024 * 1024) -> bytes | None:
    """Return the content of ``path``, or ``None`` when it does not exist.

    Raises :class:`FileIOError` when the path is not a regular file, is larger than
    ``max_size`` bytes, or cannot be read (permissions, I/O error).
    """
    if not os.path.lexists(path):
        return None
    if not os.path.isfile(path):
        raise FileIOError(f"{path} exists but is not a regular file")
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_size + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FileIOError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > max_size:
        raise FileIOError(f"{path} is larger than {max_size} bytes")
    return data


def write_atomic(
    path: str,
    content: bytes,
    mode: int | None = None,
    uid: int = -1,
    gid: int = -1,
    before_rename: Callable[[str], None] | None = None,
) -> None:
    """Write ``content`` to ``path`` atomically, with its owner and mode set before the rename
    (see the module's description).

    ``mode``: the permission bits (``None`` keeps ``0600``); ``uid`` and ``gid``: the owner and
    group (``-1`` keeps the writer's). ``before_rename(temporary_path)`` runs last before the
    rename. Raises :class:`FileIOError` when the folder is missing or not writable, or a step
    fails; the temporary file is then removed and the target left untouched.
    """
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(folder):
        raise FileIOError(f"cannot write {path}: folder {folder} does not exist")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=folder)
    except OSError as exc:
        raise FileIOError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
            stream.flush()
            descriptor = stream.fileno()
            info = os.fstat(descriptor)
            if (uid not in (-1, info.st_uid)) or (gid not in (-1, info.st_gid)):
                os.fchown(descriptor, uid, gid)  # before fchmod: chown clears setuid bits
            if mode is not None:
                os.fchmod(descriptor, mode)
            os.fsync(descriptor)
        if before_rename is not None:
            before_rename(temporary)
        os.replace(temporary, path)
    except OSError as exc:
        _unlink_quietly(temporary)
        raise FileIOError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        _unlink_quietly(temporary)
        raise


def write_file(
    module: Any,
    path: str,
    content: bytes,
    file_args: dict[str, Any] | None = None,
    secret: bool = True,
) -> bool:
    """Write ``content`` to ``path`` atomically (:func:`write_atomic`), with ``file_args``.
    Returns ``True``.

    ``module`` is the ``AnsibleModule``; ``file_args`` normally comes from
    ``module.load_file_common_arguments(module.params)`` (its ``path`` is replaced by
    ``path``; missing keys count as "not set"). When ``file_args`` has no mode, a secret
    file keeps ``0600``, and a non-secret file that did not exist before gets
    ``0666 & ~umask`` like any new file.
    Callers must not call this in check mode.

    Raises :class:`FileIOError` (the target is left untouched) when the folder is missing
    or not writable, the owner or group does not exist, or the write fails.
    """
    creating = not os.path.exists(path)
    args: dict[str, Any] = dict.fromkeys(_FILE_ARG_KEYS)
    args.update(file_args or {})
    args["path"] = path
    if args.get("mode") is None and creating and not secret:
        umask = os.umask(0)
        os.umask(umask)
        args["mode"] = 0o666 & ~umask
    mode = _octal_mode(args["mode"])
    write_atomic(
        path,
        content,
        mode=mode,
        uid=_id_of(path, args["owner"], "user"),
        gid=_id_of(path, args["group"], "group"),
        before_rename=lambda temporary: _set_default_selinux_context(module, temporary, path),
    )
    # Only what a descriptor cannot set (SELinux context, chattr attributes, a symbolic
    # mode) goes through the path: owner, group and an octal mode are in place already.
    args.update(owner=None, group=None)
    if mode is not None:
        args["mode"] = None
    module.set_fs_attributes_if_different(args, True)
    return True


def _octal_mode(mode: Any) -> int | None:
    """The permission bits of an octal ``mode`` (an int, or a string such as ``"0644"``);
    ``None`` for no mode or a symbolic one (``u=rw,g=r``), which is left to
    ``set_fs_attributes_if_different`` after the rename, relative to ``0600`` as before."""
    if mode is None:
        return None
    if isinstance(mode, int):
        value = mode
    else:
        try:
            value = int(str(mode), 8)
        except ValueError:
            return None
    return value if value == stat.S_IMODE(value) else None


def _id_of(path: str, name: Any, what: str) -> int:
    """The id of the user or group (``what``) ``name``: a number as it is, a name looked up;
    ``-1`` (keep the writer's) for none."""
    if name is None or name == "":
        return -1
    try:
        return int(name)
    except ValueError:
        pass
    try:
        if what == "user":
            return pwd.getpwnam(str(name)).pw_uid
        return grp.getgrnam(str(name)).gr_gid
    except KeyError:
        raise FileIOError(f"cannot write {path}: there is no {what} {name!r}") from None


def set_attributes(module: Any, file_args: dict[str, Any]) -> bool:
    """Give an existing file the attributes of ``file_args`` (missing keys: not set), as
    ``module.set_fs_attributes_if_different`` does; returns whether anything changed."""
    args: dict[str, Any] = dict.fromkeys(_FILE_ARG_KEYS)
    args.update(file_args)
    return bool(module.set_fs_attributes_if_different(args, False))


def remove_file(path: str) -> bool:
    """Remove ``path``. Returns ``True`` when a file was removed, ``False`` if none existed.

    Raises :class:`FileIOError` when the path exists but cannot be removed.
    """
    try:
        os.remove(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise FileIOError(f"cannot remove {path}: {exc.strerror or exc}") from exc
    return True


def exit_absent(module: Any, path: str) -> None:
    """Remove ``path`` (not in check mode) and exit the module, for ``state: absent``.

    ``changed`` says whether the file was there; the diff shows only the state.
    Raises :class:`FileIOError` when the file cannot be removed.
    """
    exists = os.path.lexists(path)
    if exists and not module.check_mode:
        remove_file(path)
    module.exit_json(
        changed=exists,
        filename=path,
        changed_reason=f"{path} removed" if exists else None,
        diff={"before": {"state": "present" if exists else "absent"}, "after": {"state": "absent"}},
    )


def _set_default_selinux_context(module: Any, tmp_path: str, path: str) -> None:
    """Give the temporary file the SELinux context the target would get (no-op without SELinux)."""
    selinux_enabled = getattr(module, "selinux_enabled", None)
    if selinux_enabled is None or not selinux_enabled():
        return
    context = module.selinux_default_context(path)
    module.set_context_if_different(tmp_path, context, False)


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)
