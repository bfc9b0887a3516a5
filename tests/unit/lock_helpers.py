# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Other processes for the certificate lock's tests: one that holds the lock, and a renewal run
(the timer's program) that stops at a chosen point.

Both are real processes. Their readiness is a line they print (read with a bound), never a
sleep. Run as a script, this file is that renewal run (see :class:`RenewalChild`).
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent
COLLECTIONS = TESTS.parents[1] / "build" / "collections"
BOUND = 60.0  # seconds a helper may take to say it is ready before the test fails

# A plain flock on the folder, as any other program could take it (not our own code).
HOLD = """
import fcntl, os, sys
handle = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(handle, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


class _Lines:
    """Lines from a child's stdout, each awaited at most until a deadline."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.buffer = b""

    def next(self, timeout: float = BOUND) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            readable = select.select([self.proc.stdout], [], [], max(left, 0))[0]
            if not readable:
                raise AssertionError(f"process {self.proc.pid} said nothing for {timeout} s")
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                raise AssertionError(f"process {self.proc.pid} ended: {self.buffer!r}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()


class LockHolder:
    """Another process that holds the certificate lock on ``folder`` until :meth:`release`."""

    def __init__(self, folder: Any) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        self.pid = self.proc.pid
        line = _Lines(self.proc).next()
        if line != "held":
            raise AssertionError(f"the lock holder said {line!r}")

    def release(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=BOUND)

    def __enter__(self) -> LockHolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self.proc.stdout.close()


def on_first_wait(monkeypatch: Any, action: Any) -> list[float]:
    """Run ``action()`` the first time anyone in this process waits for the certificate lock
    (between two tries); returns the list of waits."""
    from ansible_collections.mtls.rollout.plugins.module_utils import _item_lock

    waits: list[float] = []
    pause = _item_lock._pause

    def wait(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 1:
            action()
        pause(seconds)

    monkeypatch.setattr(_item_lock, "_pause", wait)
    return waits


class RenewalChild:
    """A forced renewal run (``_renewal.main``) in its own process.

    It prints ``ready`` and waits for :meth:`start`; prints ``waiting`` the first time it has
    to wait for the certificate lock; and at ``point`` prints ``paused`` and waits for
    :meth:`go`. Points: ``before-certificate`` (a rekey's new key is written as
    ``<key>.next``, the certificate not yet), ``before-rename`` (both written, the key not yet
    renamed).
    """

    def __init__(self, settings_path: Any, point: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(COLLECTIONS))
        self.proc = subprocess.Popen(
            [sys.executable, __file__, str(settings_path), point],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            env=env,
        )
        self.lines = _Lines(self.proc)
        self.expect("ready")

    def _say(self, word: str) -> None:
        self.proc.stdin.write(word.encode() + b"\n")

    def start(self) -> None:
        self._say("start")

    def go(self) -> None:
        self._say("go")

    def expect(self, *events: str) -> str:
        """The first of ``events`` the child says (anything else is skipped)."""
        while True:
            line = self.lines.next()
            if line in events:
                return line

    def finish(self) -> tuple[int, str]:
        """Wait for the end; returns the exit code and everything it printed after."""
        rest, err = self.proc.communicate(timeout=BOUND)  # closes its stdin first
        return self.proc.returncode, (self.lines.buffer + rest + err).decode()


def _child(settings_path: str, point: str) -> int:
    from ansible_collections.mtls.rollout.plugins.module_utils import _renewal

    try:
        from ansible_collections.mtls.rollout.plugins.module_utils import _item_lock
    except ImportError:  # the code before the lock, to show what these tests catch there
        _item_lock = None
    settings = _renewal.Settings.load(settings_path)

    def say(word: str) -> None:
        print(word, flush=True)

    def pause() -> None:
        say("paused")
        sys.stdin.readline()

    waited = []
    lock_pause = getattr(_item_lock, "_pause", None)

    def lock_wait(seconds: float) -> None:
        if not waited:
            say("waiting")
        waited.append(seconds)
        lock_pause(seconds)

    if _item_lock is not None:
        _item_lock._pause = lock_wait
    write_like, replace = _renewal.write_like, os.replace

    def before_certificate(path: str, *args: Any, **kwargs: Any) -> None:
        if point == "before-certificate" and path == settings.cert_path:
            pause()
        write_like(path, *args, **kwargs)

    def before_rename(source: Any, target: Any) -> None:
        if point == "before-rename" and str(source) == settings.staged_key_path:
            pause()
        replace(source, target)

    _renewal.write_like = before_certificate
    _renewal.os.replace = before_rename
    say("ready")
    sys.stdin.readline()
    return _renewal.main([settings_path, "--force"])


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1], sys.argv[2]))
