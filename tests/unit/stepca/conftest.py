# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for the step-ca tests: a real step-ca 0.19 on 127.0.0.1, and CSR helpers.

The CA is built with the collection's own ``_stepca_bootstrap`` functions
(no ``step`` CLI), started once per session on a free port, and stopped at the
end by terminating the process this fixture started.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

# tests/unit/conftest.py, loaded first, has put the collection on sys.path.
from ansible_collections.mtls.rollout.plugins.module_utils import (
    _stepca,
    _stepca_bootstrap,
)

REPO = Path(__file__).resolve().parents[3]

CLIENTS_PASSWORD = "clients-provisioner-password"
SERVERS_PASSWORD = "servers-provisioner-password"
CA_KEY_PASSWORD = "intermediate-key-password"
CLAIMS = {
    "minTLSCertDuration": "5m",
    "maxTLSCertDuration": "24h",
    "defaultTLSCertDuration": "2h",
}
HEALTH_TIMEOUT = 30.0


@dataclass
class StepCA:
    """What the tests need to know about the running CA."""

    url: str
    root_pem: str
    root_fingerprint: str
    root_path: str
    intermediate_pem: str
    config_dir: str
    log_path: str
    clients_password_file: str

    def client(self, **kwargs) -> _stepca.StepCAClient:
        """A client pinned to this CA's root (by PEM unless told otherwise)."""
        if "root_fingerprint" not in kwargs and "root_pem" not in kwargs:
            kwargs["root_pem"] = self.root_pem
        kwargs.setdefault("retries", 1)
        kwargs.setdefault("backoff", 0.05)
        return _stepca.StepCAClient(self.url, **kwargs)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pem(obj) -> bytes:
    return obj.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes, mode: int = 0o600) -> str:
    path.write_bytes(data)
    path.chmod(mode)
    return str(path)


def _wait_healthy(url: str, root_pem: str, proc: subprocess.Popen, log: Path) -> None:
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


@pytest.fixture(scope="session")
def step_ca_binary() -> str:
    """The step-ca binary from MTLS_STEP_CA_BINARY or build/step-ca; skip if absent."""
    path = os.environ.get("MTLS_STEP_CA_BINARY") or str(REPO / "build" / "step-ca")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.skip(
            f"step-ca binary not found at {path}: run scripts/build-step-ca.sh or set"
            " MTLS_STEP_CA_BINARY to test against a real CA"
        )
    return path


@pytest.fixture(scope="session")
def step_ca(step_ca_binary, tmp_path_factory) -> StepCA:
    """A running step-ca 0.19 with JWK provisioners ``clients`` and ``servers``."""
    base = tmp_path_factory.mktemp("step-ca")
    for sub in ("certs", "secrets", "config", "db"):
        (base / sub).mkdir()
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _stepca_bootstrap.make_root("mtls.rollout Test Root CA", root_key)
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = _stepca_bootstrap.make_intermediate(
        "mtls.rollout Test Intermediate CA", root, root_key, inter_key
    )
    root_path = _write(base / "certs" / "root_ca.crt", _pem(root), 0o644)
    inter_path = _write(base / "certs" / "intermediate_ca.crt", _pem(inter), 0o644)
    key_path = _write(
        base / "secrets" / "intermediate_ca_key",
        inter_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(CA_KEY_PASSWORD.encode()),
        ),
    )
    password_file = _write(base / "secrets" / "password", CA_KEY_PASSWORD.encode())
    clients_password_file = _write(
        base / "secrets" / "clients-password", CLIENTS_PASSWORD.encode() + b"\n"
    )
    provisioners = [
        _stepca_bootstrap.make_jwk_provisioner(
            "clients", CLIENTS_PASSWORD, CLAIMS, _stepca_bootstrap.client_only_template()
        ),
        _stepca_bootstrap.make_jwk_provisioner(
            "servers", SERVERS_PASSWORD.encode(), CLAIMS, _stepca_bootstrap.server_only_template()
        ),
    ]
    port = free_port()
    config = _stepca_bootstrap.build_ca_config(
        root_path=root_path,
        crt_path=inter_path,
        key_path=key_path,
        address=f"127.0.0.1:{port}",
        dns_names=["127.0.0.1", "localhost"],
        db_dir=str(base / "db"),
        provisioners=provisioners,
    )
    ca_json = base / "config" / "ca.json"
    ca_json.write_text(json.dumps(config, indent=2))
    log = base / "step-ca.log"
    url = f"https://127.0.0.1:{port}"
    with open(log, "wb") as log_handle:
        proc = subprocess.Popen(
            [step_ca_binary, "--password-file", password_file, str(ca_json)],
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        _wait_healthy(url, _pem(root).decode(), proc, log)
        yield StepCA(
            url=url,
            root_pem=_pem(root).decode(),
            root_fingerprint=root.fingerprint(hashes.SHA256()).hex(),
            root_path=root_path,
            intermediate_pem=_pem(inter).decode(),
            config_dir=str(base),
            log_path=str(log),
            clients_password_file=clients_password_file,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def make_csr(
    common_name: str,
    *,
    dns: tuple[str, ...] = (),
    emails: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
    uris: tuple[str, ...] = (),
    rsa_bits: int = 0,
) -> str:
    """A PEM CSR with the given CN and SANs; EC P-256 unless ``rsa_bits`` is set."""
    import ipaddress

    if rsa_bits:
        key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    names += [x509.RFC822Name(email) for email in emails]
    names += [x509.UniformResourceIdentifier(uri) for uri in uris]
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return _pem(builder.sign(key, hashes.SHA256())).decode()


@pytest.fixture(scope="session")
def csr_factory():
    """The :func:`make_csr` helper, as a fixture."""
    return make_csr
