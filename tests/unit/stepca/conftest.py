# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for the step-ca tests: a real step-ca 0.19 on 127.0.0.1, and CSR helpers.

The CA is built with the collection's own ``_stepca_bootstrap`` functions
(no ``step`` CLI) by ``tests/unit/stepca_server.py``, started once per session on a
free port, and stopped at the end by terminating the process this fixture started.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

# tests/unit/conftest.py, loaded first, has put tests/unit and the collection on sys.path.
from stepca_server import free_port as free_port  # the test modules import it from here
from stepca_server import pem, start_step_ca, write_file

from ansible_collections.mtls.rollout.plugins.module_utils import _stepca, _stepca_bootstrap

REPO = Path(__file__).resolve().parents[3]

CLIENTS_PASSWORD = "clients-provisioner-password"
SERVERS_PASSWORD = "servers-provisioner-password"
CA_KEY_PASSWORD = "intermediate-key-password"
CLAIMS = {
    "minTLSCertDuration": "5m",
    "maxTLSCertDuration": "24h",
    "defaultTLSCertDuration": "2h",
}


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
    provisioners = [
        _stepca_bootstrap.make_jwk_provisioner(
            "clients", CLIENTS_PASSWORD, CLAIMS, _stepca_bootstrap.client_only_template()
        ),
        _stepca_bootstrap.make_jwk_provisioner(
            "servers", SERVERS_PASSWORD.encode(), CLAIMS, _stepca_bootstrap.server_only_template()
        ),
    ]
    with start_step_ca(
        step_ca_binary, base, provisioners, key_password=CA_KEY_PASSWORD.encode()
    ) as running:
        clients_password_file = write_file(
            base / "secrets" / "clients-password", CLIENTS_PASSWORD.encode() + b"\n"
        )
        yield StepCA(
            url=running.url,
            root_pem=running.root_pem,
            root_fingerprint=running.root_fingerprint,
            root_path=running.root_path,
            intermediate_pem=running.intermediate_pem,
            config_dir=str(base),
            log_path=str(running.log_path),
            clients_password_file=clients_password_file,
        )


@pytest.fixture(scope="session")
def provisioner_keys(step_ca):
    """The decrypted JWK keys of the CA's two provisioners, by profile."""
    client = step_ca.client()
    return {
        "client": client.provisioner_key("clients", CLIENTS_PASSWORD.encode()),
        "server": client.provisioner_key("servers", SERVERS_PASSWORD.encode()),
    }


@pytest.fixture(scope="session")
def run_playbook(tmp_path_factory):
    """Run a playbook with ansible-playbook on localhost; skip if it is not installed.

    ``run_playbook(name, playbook, extra)`` writes ``playbook`` and the ``extra`` vars
    to a new temporary directory ``name``, adds ``out`` (a file the playbook saves its
    results to, as JSON) and ``ansible_python_interpreter``, runs it from the checkout,
    asserts that it succeeded, and returns ``(results, stdout + stderr)``.
    """
    ansible_playbook = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent))
    if ansible_playbook is None:
        pytest.skip("ansible-playbook is not installed next to this Python")

    def run(name: str, playbook: str, extra: dict) -> tuple[dict, str]:
        work = tmp_path_factory.mktemp(name)
        (work / "play.yml").write_text(playbook)
        extra = dict(extra, out=str(work / "out.json"), ansible_python_interpreter=sys.executable)
        (work / "extra.json").write_text(json.dumps(extra))
        env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0")
        proc = subprocess.run(
            [
                ansible_playbook,
                "-i",
                "localhost,",
                "-c",
                "local",
                "-e",
                f"@{work / 'extra.json'}",
                str(work / "play.yml"),
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return json.loads((work / "out.json").read_text()), proc.stdout + proc.stderr

    return run


def assert_documented_as_specified(module: str, spec: dict, *, elements: bool) -> None:
    """``ansible-doc mtls.rollout.<module>`` documents exactly ``spec``'s options.

    For each option: the same type, default and requiredness, and with ``elements``
    the same list elements. Skips if ansible-doc is not installed.
    """
    ansible_doc = shutil.which("ansible-doc", path=str(Path(sys.executable).parent))
    if ansible_doc is None:
        pytest.skip("ansible-doc is not installed next to this Python")
    proc = subprocess.run(
        [ansible_doc, "--json", f"mtls.rollout.{module}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    options = json.loads(proc.stdout)[f"mtls.rollout.{module}"]["doc"]["options"]
    assert set(options) == set(spec)
    for name, arg in spec.items():
        documented = options[name]
        assert documented.get("type") == arg.get("type"), name
        assert documented.get("default") == arg.get("default"), name
        assert bool(documented.get("required")) == bool(arg.get("required")), name
        if elements:
            assert documented.get("elements") == arg.get("elements"), name


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
    return pem(builder.sign(key, hashes.SHA256())).decode()


@pytest.fixture(scope="session")
def csr_factory():
    """The :func:`make_csr` helper, as a fixture."""
    return make_csr
