# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""step_ca_revoke run by ansible-playbook against the session step-ca.

One playbook revokes a certificate four times (check, real, check, real), by
its serial in NGINX's hex form and in decimal, revokes another by its PEM, and
fails with a wrong password. The certificates are signed in Python beforehand
to keep the playbook short; the details are tested on _stepca directly
(test_stepca_revoke.py).
"""

from __future__ import annotations

import json

import pytest
from conftest import CLIENTS_PASSWORD, assert_documented_as_specified, make_csr

from ansible_collections.mtls.rollout.plugins.module_utils import _stepca, _stepca_modules

PLAYBOOK = """
- name: Exercise step_ca_revoke
  hosts: localhost
  gather_facts: false
  vars:
    conn: &conn
      ca_url: "{{ ca_url }}"
      root_fingerprint: "{{ root_fingerprint }}"
      retries: 1
      provisioner: clients
  tasks:
    - name: Revoke the first by its hex serial, in check mode
      mtls.rollout.step_ca_revoke:
        <<: *conn
        provisioner_password: "{{ clients_password }}"
        serial: "{{ first.serial_hex }}"
        reason_code: keyCompromise
        reason: unit test
      check_mode: true
      register: check1

    - name: Revoke the first for real
      mtls.rollout.step_ca_revoke:
        <<: *conn
        provisioner_password: "{{ clients_password }}"
        serial: "{{ first.serial_hex }}"
        reason_code: keyCompromise
        reason: unit test
      register: real1

    - name: Check mode again
      mtls.rollout.step_ca_revoke:
        <<: *conn
        provisioner_password: "{{ clients_password }}"
        serial: "{{ first.serial_hex }}"
        reason_code: keyCompromise
      check_mode: true
      register: check2

    - name: For real again, by the decimal serial
      mtls.rollout.step_ca_revoke:
        <<: *conn
        provisioner_password: "{{ clients_password }}"
        serial: "{{ first.serial }}"
        reason_code: 1
      register: real2

    - name: Revoke the second by its certificate
      mtls.rollout.step_ca_revoke:
        <<: *conn
        provisioner_password_file: "{{ clients_password_file }}"
        certificate: "{{ second.fullchain }}"
        reason_code: superseded
      register: by_cert

    - name: Wrong password
      mtls.rollout.step_ca_revoke:
        <<: *conn
        provisioner_password: "{{ wrong_password }}"
        serial: "12345"
      register: wrong
      failed_when: false

    - name: Save the results for the test
      ansible.builtin.copy:
        content: "{{ {'check1': check1, 'real1': real1, 'check2': check2, 'real2': real2,
                      'by_cert': by_cert, 'wrong': wrong} | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
"""

WRONG_PASSWORD = "wrong-revoke-password-do-not-print"


@pytest.fixture(scope="module")
def run(step_ca, run_playbook):
    client = step_ca.client()
    key = client.provisioner_key("clients", CLIENTS_PASSWORD.encode())
    signed = [
        outcome.certificate
        for outcome in client.sign_many(
            key,
            [
                _stepca.SignRequest(csr=make_csr("Mallory", emails=("mallory@example.com",))),
                _stepca.SignRequest(csr=make_csr("Trent", emails=("trent@example.com",))),
            ],
            workers=2,
        )
    ]
    assert all(signed)
    extra = {
        "ca_url": step_ca.url,
        "root_fingerprint": step_ca.root_fingerprint,
        "clients_password_file": step_ca.clients_password_file,
        "clients_password": CLIENTS_PASSWORD,
        "wrong_password": WRONG_PASSWORD,
        "first": signed[0].as_dict(),
        "second": signed[1].as_dict(),
    }
    results, output = run_playbook("revoke-module", PLAYBOOK, extra)
    results["signed"] = [item.as_dict() for item in signed]
    return results, output


def test_four_runs(run):
    results, _ = run
    first = results["signed"][0]
    check1, real1, check2, real2 = (results[k] for k in ("check1", "real1", "check2", "real2"))
    assert (check1["changed"], check1["revoked"]) == (True, False)
    assert "already_revoked" not in check1
    assert (real1["changed"], real1["revoked"], real1["already_revoked"]) == (True, True, False)
    # Check mode cannot ask step-ca 0.19 whether a serial is revoked: it predicts a change.
    assert check2["changed"] is True
    assert (real2["changed"], real2["revoked"], real2["already_revoked"]) == (False, True, True)
    for result in (check1, real1, check2, real2):
        assert result["serial"] == first["serial"]
        assert result["serial_hex"] == first["serial_hex"]
        assert result["reason_code"] == 1
    assert real1["reason"] == "unit test"


def test_by_certificate(run):
    results, _ = run
    second = results["signed"][1]
    by_cert = results["by_cert"]
    assert by_cert["changed"] is True
    assert by_cert["serial"] == second["serial"]
    assert by_cert["subject"] == "CN=Trent"
    assert by_cert["reason_code"] == 4


def test_failures_are_clear_and_secret_free(run):
    results, output = run
    wrong = results["wrong"]
    assert wrong["error_kind"] == "wrong_password"
    assert "wrong password for provisioner 'clients'" in wrong["msg"]
    everything = output + json.dumps(results)
    for secret in (WRONG_PASSWORD, CLIENTS_PASSWORD):
        assert secret not in everything
    assert "PRIVATE KEY" not in everything


def test_documentation_matches_argument_spec():
    spec = _stepca_modules.REVOKE_ARGUMENT_SPEC
    assert_documented_as_specified("step_ca_revoke", spec, elements=False)
    for name, arg in spec.items():
        if "password" in name:
            assert arg.get("no_log") is (not name.endswith("_file")), name
