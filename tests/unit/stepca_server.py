# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A throw-away step-ca on 127.0.0.1, for the step-ca tests and bench/sign_batch.py.

The CA material is made with the collection's own ``_stepca_bootstrap`` (no ``step``
CLI). :func:`start_step_ca` writes it under a work directory, starts step-ca on a free
port, waits for ``/health`` and returns a :class:`RunningCA` whose :meth:`~RunningCA.stop`
(or ``with``) ends the process it started.

Plain module, no pytest: importing it puts the collection on sys.path when it is not
importable yet (through ``build/collections``, linked here when missing).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEALTH_TIMEOUT = 30.0


def _make_collection_importable() -> None:
    """Import the collection from this checkout (through build/collections)."""
    try:
        import ansible_collections.mtls.rollout.plugins.module_utils._stepca  # noqa: F401
    except ImportError:
        pass
    else:
        return
    link_root = REPO / "build" / "collections"
    link = link_root / "ansible_collections" / "mtls" / "rollout"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(REPO, link.parent))
    sys.path.insert(0, str(link_root))


_make_collection_importable()

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ansible_collections.mtls.rollout.plugins.module_utils import _stepca_bootstrap


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pem(obj) -> bytes:
    """A certificate or CSR as PEM bytes."""
    return obj.public_bytes(serialization.Encoding.PEM)


def write_file(path: Path, data: bytes, mode: int = 0o600) -> str:
    """Write ``data`` to ``path`` with ``mode``; return the path as a string."""
    path.write_bytes(data)
    path.chmod(mode)
    return str(path)


def launch(binary: str, password_file: str, ca_json: str, log: Path) -> subprocess.Popen:
    """Start ``binary`` on ``ca_json``, its output going to ``log``."""
    with open(log, "wb") as log_handle:
        return subprocess.Popen(
            [binary, "--password-file", password_file, ca_json],
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def wait_healthy(url: str, root_pem: str, proc: subprocess.Popen, log: Path) -> None:
    """Poll ``url``/health (verified against ``root_pem``) until ok, for HEALTH_TIMEOUT."""
    context = ssl.create_default_context(cadata=root_pem)
    deadline = time.monotonic() + HEALTH_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"step-ca exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/health", context=context, timeout=2) as answer:
                if json.loads(answer.read()).get("status") == "ok":
                    return
        except OSError as exc:
            last = str(exc)
        # Bounded poll interval, not a fixed wait for the service.
        time.sleep(0.1)
    raise RuntimeError(f"step-ca not healthy after {HEALTH_TIMEOUT}s ({last}):\n{log.read_text()}")


def stop(proc: subprocess.Popen) -> None:
    """End ``proc`` (a process we started): terminate, then kill after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@dataclass
class RunningCA:
    """A step-ca started by :func:`start_step_ca`."""

    url: str
    port: int
    root_pem: str
    root_fingerprint: str
    root_path: str
    intermediate_pem: str
    workdir: Path
    log_path: Path
    proc: subprocess.Popen

    def stop(self) -> None:
        stop(self.proc)

    def __enter__(self) -> RunningCA:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def start_step_ca(
    binary: str,
    workdir: Path,
    provisioners: list[dict],
    *,
    name: str = "mtls.rollout Test",
    key_password: bytes | None = None,
) -> RunningCA:
    """Make a root and intermediate, start step-ca with ``provisioners``, wait for health.

    ``provisioners`` are ``_stepca_bootstrap.make_jwk_provisioner`` entries. The
    intermediate key is encrypted with ``key_password`` (random when not given).
    Files go to ``workdir``/{certs,secrets,config,db}; the log to ``workdir``/step-ca.log.
    If the CA does not become healthy, the process is stopped and RuntimeError raised.
    """
    if key_password is None:
        key_password = secrets.token_hex(16).encode()
    for sub in ("certs", "secrets", "config", "db"):
        (workdir / sub).mkdir()
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _stepca_bootstrap.make_root(f"{name} Root CA", root_key)
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = _stepca_bootstrap.make_intermediate(
        f"{name} Intermediate CA", root, root_key, inter_key
    )
    root_path = write_file(workdir / "certs" / "root_ca.crt", pem(root), 0o644)
    inter_path = write_file(workdir / "certs" / "intermediate_ca.crt", pem(inter), 0o644)
    key_path = write_file(
        workdir / "secrets" / "intermediate_ca_key",
        inter_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(key_password),
        ),
    )
    password_file = write_file(workdir / "secrets" / "password", key_password)
    port = free_port()
    config = _stepca_bootstrap.build_ca_config(
        root_path=root_path,
        crt_path=inter_path,
        key_path=key_path,
        address=f"127.0.0.1:{port}",
        dns_names=["127.0.0.1", "localhost"],
        db_dir=str(workdir / "db"),
        provisioners=provisioners,
    )
    ca_json = workdir / "config" / "ca.json"
    ca_json.write_text(json.dumps(config, indent=2))
    log = workdir / "step-ca.log"
    ca = RunningCA(
        url=f"https://127.0.0.1:{port}",
        port=port,
        root_pem=pem(root).decode(),
        root_fingerprint=root.fingerprint(hashes.SHA256()).hex(),
        root_path=root_path,
        intermediate_pem=pem(inter).decode(),
        workdir=workdir,
        log_path=log,
        proc=launch(binary, password_file, str(ca_json), log),
    )
    try:
        wait_healthy(ca.url, ca.root_pem, ca.proc, log)
    except BaseException:
        ca.stop()
        raise
    return ca
