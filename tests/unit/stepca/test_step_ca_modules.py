# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""step_ca_sign and step_ca_info run by ansible-playbook against the session step-ca.

One playbook run covers the modules end to end (argument spec, check mode,
results, failures); the details are tested on _stepca directly.
"""

from __future__ import annotations

import json

import pytest
from conftest import CLIENTS_PASSWORD, SERVERS_PASSWORD, free_port, make_csr
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

PLAYBOOK = """
- name: Exercise step_ca_info and step_ca_sign
  hosts: localhost
  gather_facts: false
  vars:
    conn: &conn
      ca_url: "{{ ca_url }}"
      root_fingerprint: "{{ root_fingerprint }}"
      retries: 1
  tasks:
    - name: Info, waiting for health
      mtls.rollout.step_ca_info:
        <<: *conn
        wait_timeout: 10
      register: info

    - name: Sign one client CSR with a password file
      mtls.rollout.step_ca_sign:
        <<: *conn
        provisioner: clients
        provisioner_password_file: "{{ clients_password_file }}"
        csr: "{{ client_csr }}"
        duration: 12h
      register: single

    - name: Batch in check mode
      mtls.rollout.step_ca_sign:
        <<: *conn
        provisioner: servers
        provisioner_password: "{{ servers_password }}"
        csrs: "{{ server_csrs }}"
      check_mode: true
      register: batch_check

    - name: Batch for real
      mtls.rollout.step_ca_sign:
        <<: *conn
        provisioner: servers
        provisioner_password: "{{ servers_password }}"
        csrs: "{{ server_csrs }}"
        workers: 2
      register: batch

    - name: Wrong password
      mtls.rollout.step_ca_sign:
        <<: *conn
        provisioner: servers
        provisioner_password: "{{ wrong_password }}"
        csr: "{{ client_csr }}"
      register: wrong
      failed_when: false

    - name: Stopped CA
      mtls.rollout.step_ca_info:
        ca_url: "{{ closed_url }}"
        root: "{{ root_path }}"
        retries: 0
        timeout: 2
      register: down
      failed_when: false

    - name: Save the results for the test
      ansible.builtin.copy:
        content: "{{ {'info': info, 'single': single, 'batch_check': batch_check,
                      'batch': batch, 'wrong': wrong, 'down': down} | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
"""

WRONG_PASSWORD = "wrong-password-do-not-print"


@pytest.fixture(scope="module")
def run(step_ca, run_playbook):
    server_csrs = [
        make_csr("web-0.example.test", dns=("web-0.example.test",)),
        {
            "csr": make_csr("web-1.example.test", dns=("web-1.example.test", "web-1")),
            "duration": "3h",
            "subject_alt_names": ["web-1", "web-1.example.test"],
        },
        make_csr("web-2.example.test", dns=("web-2.example.test",), ips=("192.0.2.2",)),
    ]
    extra = {
        "ca_url": step_ca.url,
        "root_fingerprint": step_ca.root_fingerprint,
        "root_path": step_ca.root_path,
        "clients_password_file": step_ca.clients_password_file,
        "servers_password": SERVERS_PASSWORD,
        "wrong_password": WRONG_PASSWORD,
        "client_csr": make_csr("John Doe", emails=("john.doe@example.com",), rsa_bits=2048),
        "server_csrs": server_csrs,
        "closed_url": f"https://127.0.0.1:{free_port()}",
    }
    results, output = run_playbook("modules", PLAYBOOK, extra)
    return results, output, server_csrs


def _cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def test_info(run, step_ca):
    results, _, _ = run
    info = results["info"]
    assert info["changed"] is False
    assert info["health"] == {"status": "ok"}
    assert info["version"].startswith("0.19")
    assert info["root_certificate"] == step_ca.root_pem
    assert info["root_fingerprint"] == step_ca.root_fingerprint
    assert [r["fingerprint"] for r in info["roots"]] == [step_ca.root_fingerprint]
    names = {p["name"]: p for p in info["provisioners"]}
    assert set(names) == {"clients", "servers"}
    assert names["clients"]["type"] == "JWK"
    assert names["clients"]["claims"]["maxTLSCertDuration"].startswith("24h")
    assert "encryptedKey" not in json.dumps(info)


def test_sign_single(run, step_ca):
    results, _, _ = run
    single = results["single"]
    assert single["changed"] is True
    leaf = _cert(single["certificate"])
    assert single["subject"] == "CN=John Doe"
    assert single["subject_alt_names"] == ["john.doe@example.com"]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert single["fullchain"] == single["certificate"] + single["chain"]
    assert _cert(single["chain"]).subject == _cert(step_ca.intermediate_pem).subject
    assert single["serial"] == str(leaf.serial_number)
    assert single["root_fingerprint"] == step_ca.root_fingerprint


def test_sign_batch_in_order_and_check_mode(run):
    results, _, server_csrs = run
    check = results["batch_check"]
    assert check["changed"] is True
    assert "certificates" not in check
    batch = results["batch"]["certificates"]
    assert [item["subject"] for item in batch] == [
        "CN=web-0.example.test",
        "CN=web-1.example.test",
        "CN=web-2.example.test",
    ]
    assert batch[2]["subject_alt_names"] == ["web-2.example.test", "192.0.2.2"]
    lifetime = (
        _cert(batch[1]["certificate"]).not_valid_after_utc
        - _cert(batch[1]["certificate"]).not_valid_before_utc
    )
    assert abs(lifetime.total_seconds() - 3 * 3600) <= 120
    assert len(server_csrs) == len(batch)


def test_failures_are_clear_and_secret_free(run):
    results, output, _ = run
    wrong = results["wrong"]
    assert "certificate" not in wrong  # failed_when: false keeps the play going
    assert wrong["error_kind"] == "wrong_password"
    assert "wrong password for provisioner 'servers'" in wrong["msg"]
    down = results["down"]
    assert down["error_kind"] == "unreachable"
    assert "unreachable after 1 attempt(s)" in down["msg"]
    everything = output + json.dumps(results)
    for secret in (WRONG_PASSWORD, SERVERS_PASSWORD, CLIENTS_PASSWORD):
        assert secret not in everything
    assert "PRIVATE KEY" not in everything
