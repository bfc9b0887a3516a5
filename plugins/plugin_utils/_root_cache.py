# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's cache of CA roots, keyed by their pinned SHA-256 fingerprint.

The ``certificate`` role needs the CA's root on every run (it is the hosts' trust bundle,
and the anchor their certificates are checked against). A root is public data, and the
role trusts a root only by its pinned fingerprint, so it can be kept on the controller:
``<folder>/<fingerprint>.pem``. Every read checks the file again (a self-signed CA
certificate whose SHA-256 is the fingerprint in its name); a file that fails the check is
ignored and fetched again. A run where the root is cached asks the CA for nothing.

Workers of one ``ansible-playbook`` run share the folder: the first that misses fetches
the root under a lock (bounded wait) and the others then read it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hmac
import os
import tempfile
import time
from collections.abc import Callable, Iterator

from ansible_collections.mtls.rollout.plugins.module_utils import _stepca

LOCK_NAME = ".lock"


class RootCacheError(Exception):
    """The root could neither be read from the cache nor fetched; the message says why."""


def _path(folder: str, fingerprint: str) -> str:
    return os.path.join(folder, f"{fingerprint}.pem")


def read(folder: str, fingerprint: str) -> str | None:
    """The cached root for ``fingerprint`` (PEM), or ``None`` when absent or not that root."""
    try:
        with open(_path(folder, fingerprint), "rb") as handle:
            data = handle.read(64 * 1024)
    except OSError:
        return None
    try:
        root = _stepca.load_root_pem(data)
    except _stepca.StepCAError:
        return None
    if not hmac.compare_digest(_stepca.fingerprint(root), fingerprint):
        return None
    return _stepca.cert_pem(root)


def write(folder: str, fingerprint: str, pem: str) -> bool:
    """Store ``pem`` atomically; ``False`` (and nothing written) when the folder is not writable."""
    try:
        os.makedirs(folder, mode=0o755, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".root-", suffix=".tmp")
    except OSError:
        return False
    try:
        with os.fdopen(handle, "w") as out:
            out.write(pem)
        os.chmod(temporary, 0o644)
        os.replace(temporary, _path(folder, fingerprint))
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        return False
    return True


@contextlib.contextmanager
def _locked(folder: str, wait: float) -> Iterator[bool]:
    """Hold the folder's lock for a fetch; yields whether it was got within ``wait`` seconds.

    Without the lock (a folder that cannot be created, or a holder that takes too long) the
    caller fetches anyway: the lock only saves the CA duplicate requests.
    """
    try:
        os.makedirs(folder, mode=0o755, exist_ok=True)
        handle = os.open(os.path.join(folder, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield False
        return
    deadline = time.monotonic() + wait
    got = False
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                got = True
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    break
            time.sleep(0.05)
        yield got
    finally:
        if got:
            fcntl.flock(handle, fcntl.LOCK_UN)
        os.close(handle)


def fetch(url: str, fingerprint: str, timeout: float, retries: int) -> str:
    """``GET /root/<fingerprint>`` from the CA, trusted only if its SHA-256 is ``fingerprint``."""
    client = _stepca.StepCAClient(
        url, root_fingerprint=fingerprint, timeout=timeout, retries=retries
    )
    return _stepca.cert_pem(client.bootstrap_root())


def obtain(
    folder: str | None,
    url: str,
    fingerprint: str,
    timeout: float,
    retries: int,
    fetcher: Callable[[str, str, float, int], str] = fetch,
) -> tuple[str, str]:
    """The root pinned by ``fingerprint``: ``(pem, "cache")`` or ``(pem, "ca")``.

    Without a ``folder`` the root is fetched every time. Raises :class:`RootCacheError`.
    """
    if folder:
        cached = read(folder, fingerprint)
        if cached is not None:
            return cached, "cache"
    wait = timeout * (retries + 1) + 5.0
    with _locked(folder, wait) if folder else contextlib.nullcontext(False):
        if folder:
            cached = read(folder, fingerprint)  # another worker may have fetched it meanwhile
            if cached is not None:
                return cached, "cache"
        try:
            pem = fetcher(url, fingerprint, timeout, retries)
        except _stepca.StepCAError as exc:
            raise RootCacheError(str(exc)) from None
        if folder:
            write(folder, fingerprint, pem)
    return pem, "ca"


def transition_fingerprints(values: list[object] | None, pinned: str) -> list[str]:
    """``certificate_ca_transition_roots`` as normalised fingerprints, without the pinned root
    and duplicates. Raises :class:`RootCacheError` for one that is not 64 hex digits."""
    found: list[str] = []
    for value in values or []:
        try:
            fingerprint = _stepca.normalize_fingerprint(str(value))
        except _stepca.StepCAError:
            raise RootCacheError(
                f"certificate_ca_transition_roots: {value!r} is not a SHA-256 fingerprint"
                " (64 hex digits)"
            ) from None
        if fingerprint != pinned and fingerprint not in found:
            found.append(fingerprint)
    return found


def bundle(roots: dict[str, str]) -> str:
    """The trust bundle of ``roots`` (fingerprint: PEM), in the order of their fingerprints, so
    that a rotation which swaps the CA's root and the other one leaves the file unchanged."""
    return "".join(roots[fingerprint] for fingerprint in sorted(roots))
