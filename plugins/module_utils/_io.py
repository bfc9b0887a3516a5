# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""File helpers for mtls.rollout modules: atomic writes with safe modes, and reads.

The one way to write a file is :func:`write_file`:

1. a temporary file is created with mode ``0600`` in the target's own folder
   (``tempfile.mkstemp``), so secrets are never readable by others, not even for
   a moment, and the final rename stays on one filesystem;
2. the content is written and flushed to disk;
3. the temporary file is renamed over the target with :func:`os.replace` (atomic);
4. the file attributes (owner, group, mode, SELinux context, ...) the task asked for are set
   with ``module.set_fs_attributes_if_different``.

``AnsibleModule.atomic_move`` is not used for the rename because it gives a *new* file the
mode ``0666 & ~umask`` before the attributes are applied, which would expose a private key.

Nothing here decides whether to write: callers check ``module.check_mode`` first.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Any

__all__ = [
    "FileIOError",
    "read_bytes",
    "remove_file",
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


def write_file(
    module: Any,
    path: str,
    content: bytes,
    file_args: dict[str, Any] | None = None,
    secret: bool = True,
) -> bool:
    """Write ``content`` to ``path`` atomically, then apply ``file_args``. Returns ``True``.

    ``module`` is the ``AnsibleModule``; ``file_args`` normally comes from
    ``module.load_file_common_arguments(module.params)`` (its ``path`` is replaced by
    ``path``; missing keys count as "not set"). When ``file_args`` has no mode, a secret
    file keeps ``0600``, and a non-secret file that did not exist before gets
    ``0666 & ~umask`` like any new file.
    Callers must not call this in check mode.

    Raises :class:`FileIOError` (the target is left untouched) when the folder is missing
    or not writable, or the write fails.
    """
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(folder):
        raise FileIOError(f"cannot write {path}: folder {folder} does not exist")
    creating = not os.path.exists(path)
    try:
        handle, tmp_path = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=folder)
    except OSError as exc:
        raise FileIOError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        _set_default_selinux_context(module, tmp_path, path)
        os.replace(tmp_path, path)
    except OSError as exc:
        _unlink_quietly(tmp_path)
        raise FileIOError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        _unlink_quietly(tmp_path)
        raise

    args: dict[str, Any] = dict.fromkeys(_FILE_ARG_KEYS)
    args.update(file_args or {})
    args["path"] = path
    if args.get("mode") is None and creating and not secret:
        umask = os.umask(0)
        os.umask(umask)
        args["mode"] = 0o666 & ~umask
    module.set_fs_attributes_if_different(args, True)
    return True


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
