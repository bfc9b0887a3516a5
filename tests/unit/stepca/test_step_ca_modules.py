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

    - name: Batch where the CA refuses one item and the controller another
      mtls.rollout.step_ca_sign:
        <<: *conn
        provisioner: servers
        provisioner_password: "{{ servers_password }}"
        csrs: "{{ mixed_csrs }}"
      register: mixed

    - name: Batch where every item is refused
      mtls.rollout.step_ca_sign:
        <<: *conn
        provisioner: servers
        provisioner_password: "{{ servers_password }}"
        csrs: "{{ mixed_csrs[1:3] }}"
      register: all_refused

    - name: A host's CSR asks for a name it was not given
      mtls.rollout.step_ca_sign:
        <<: *conn
        provisioner: servers
        provisioner_password: "{{ servers_password }}"
        csr: "{{ mixed_csrs[2].csr }}"
        subject_alt_names: []
      register: attacker
      failed_when: false

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
                      'batch': batch, 'mixed': mixed, 'all_refused': all_refused,
                      'attacker': attacker, 'wrong': wrong, 'down': down} | to_json }}"
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
        "mixed_csrs": [
            make_csr("web-3.example.test", dns=("web-3.example.test",)),
            # step-ca refuses RSA keys under 2048 bits; nothing checks that before it.
            make_csr("weak.example.test", dns=("weak.example.test",), rsa_bits=1024),
            # A host that puts another name in its CSR than the inventory gave it.
            {
                "csr": make_csr("web", dns=("bank.example.com",)),
                "common_name": "web",
                "subject_alt_names": [],
            },
            make_csr("web-4.example.test", dns=("web-4.example.test",)),
        ],
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
    assert check["results"] == [{"ok": True}] * 3
    assert check["failed_count"] == 0
    assert results["batch"]["failed_count"] == 0
    batch = results["batch"]["results"]
    assert all(item["ok"] for item in batch)
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


def test_sign_batch_reports_each_item(run):
    results, _, _ = run
    mixed = results["mixed"]
    assert "failed" not in mixed or mixed["failed"] is False
    assert mixed["changed"] is True
    assert mixed["failed_count"] == 2
    first, weak, attack, last = mixed["results"]
    assert first["ok"] is True and last["ok"] is True
    assert _cert(first["certificate"]).subject.rfc4514_string() == "CN=web-3.example.test"
    assert _cert(last["certificate"]).subject.rfc4514_string() == "CN=web-4.example.test"
    for item in (first, last):
        assert item["fullchain"] == item["certificate"] + item["chain"]
        assert set(item) >= {"serial", "serial_hex", "not_after", "subject_alt_names"}
    # The CA's own reason, word for word.
    assert weak == {
        "ok": False,
        "error_kind": "refused",
        "msg": weak["msg"],
    }
    assert "RSA key must be at least 2048 bits" in weak["msg"]
    assert attack["ok"] is False
    assert attack["error_kind"] == "san_not_allowed"
    assert "DNS:bank.example.com" in attack["msg"]
    assert "certificate" not in attack and "certificate" not in weak


def test_sign_batch_without_any_certificate_is_not_changed(run):
    results, _, _ = run
    refused = results["all_refused"]
    assert refused["changed"] is False
    assert "failed" not in refused or refused["failed"] is False
    assert [item["ok"] for item in refused["results"]] == [False, False]
    assert refused["failed_count"] == 2


def test_sign_single_refuses_sans_the_item_did_not_get(run):
    results, _, _ = run
    attacker = results["attacker"]  # failed_when: false clears `failed`
    assert attacker["error_kind"] == "san_not_allowed"
    assert "DNS:bank.example.com" in attacker["msg"]
    assert "certificate" not in attacker
