# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``group/mtls.rollout.step_ca`` action group (meta/runtime.yml).

A playbook sets the CA connection and the provisioner password once, with
``module_defaults``, and calls step_ca_info, step_ca_sign and step_ca_revoke without any
CA option, against the session's real step-ca.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import CLIENTS_PASSWORD, SERVERS_PASSWORD, make_csr

from ansible_collections.mtls.rollout.plugins.module_utils import _stepca_modules

REPO = Path(__file__).resolve().parents[3]

PLAYBOOK = """
- name: Talk to step-ca with the CA options set once for the group
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/mtls.rollout.step_ca:
      ca_url: "{{ ca_url }}"
      root_fingerprint: "{{ root_fingerprint }}"
      retries: 1
      provisioner: clients
      provisioner_password: "{{ clients_password }}"
  tasks:
    - name: Info, with no option at all
      mtls.rollout.step_ca_info:
      register: info

    - name: Sign with the group's provisioner and password
      mtls.rollout.step_ca_sign:
        csr: "{{ client_csr }}"
      register: signed

    - name: Revoke what was just signed
      mtls.rollout.step_ca_revoke:
        serial: "{{ signed.serial }}"
        reason_code: superseded
      register: revoked

    - name: A task's own options win over the group's
      mtls.rollout.step_ca_sign:
        provisioner: servers
        provisioner_password: "{{ servers_password }}"
        csr: "{{ server_csr }}"
      register: server

    - name: Save the results for the test
      ansible.builtin.copy:
        content: "{{ {'info': info, 'signed': signed, 'revoked': revoked,
                      'server': server} | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
"""


def _group() -> list[str]:
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())
    return runtime["action_groups"]["step_ca"]


def test_group_lists_the_modules_that_talk_to_a_running_ca():
    assert sorted(_group()) == ["step_ca_info", "step_ca_revoke", "step_ca_sign"]


def test_group_is_exactly_the_modules_with_the_connection_options():
    # The ca_connection doc fragment documents the options and the group membership: a
    # new module that extends it must join the group, and no other module may.
    with_fragment = sorted(
        path.stem
        for path in (REPO / "plugins" / "modules").glob("*.py")
        if "- mtls.rollout.ca_connection" in path.read_text()
    )
    assert with_fragment == sorted(_group())


@pytest.mark.parametrize(
    "spec",
    [
        _stepca_modules.INFO_ARGUMENT_SPEC,
        _stepca_modules.SIGN_ARGUMENT_SPEC,
        _stepca_modules.REVOKE_ARGUMENT_SPEC,
    ],
    ids=["step_ca_info", "step_ca_sign", "step_ca_revoke"],
)
def test_every_member_accepts_every_group_option(spec):
    # module_defaults copies a group's options into every member's arguments: an option
    # that one member does not know would fail that module with "Unsupported parameters".
    shared = set(_stepca_modules.MODULE_CONNECTION_SPEC) | set(_stepca_modules.PROVISIONER_SPEC)
    assert shared <= set(spec)
    assert spec["provisioner_password"].get("no_log") is True


def test_module_defaults_for_the_group(step_ca, run_playbook):
    extra = {
        "ca_url": step_ca.url,
        "root_fingerprint": step_ca.root_fingerprint,
        "clients_password": CLIENTS_PASSWORD,
        "servers_password": SERVERS_PASSWORD,
        "client_csr": make_csr("Grace", emails=("grace@example.com",)),
        "server_csr": make_csr("web-9.example.test", dns=("web-9.example.test",)),
    }
    results, output = run_playbook("action-group", PLAYBOOK, extra)
    assert results["info"]["health"] == {"status": "ok"}
    assert results["info"]["root_fingerprint"] == step_ca.root_fingerprint
    signed = results["signed"]
    assert signed["changed"] is True
    assert signed["subject"] == "CN=Grace"
    assert signed["root_fingerprint"] == step_ca.root_fingerprint
    revoked = results["revoked"]
    assert (revoked["changed"], revoked["revoked"]) == (True, True)
    assert revoked["serial"] == signed["serial"]
    assert results["server"]["subject"] == "CN=web-9.example.test"
    assert results["server"]["subject_alt_names"] == ["web-9.example.test"]
    for password in (CLIENTS_PASSWORD, SERVERS_PASSWORD):
        assert password not in output
