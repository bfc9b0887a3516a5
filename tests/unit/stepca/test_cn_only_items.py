# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Items with a common name and no SANs, issued by the real step-ca, stay valid.

step-ca copies the token's subject into the SANs when it names none, so a person's
certificate for CN ``John Doe`` comes back with ``DNS:John Doe``. The module path a
certificate role takes (private_key, csr, step_ca_sign, certificate_info) must then
see it as valid, not "SANs differ" on every run.
"""

from __future__ import annotations

import pytest
from conftest import CLIENTS_PASSWORD, SERVERS_PASSWORD

from ansible_collections.mtls.rollout.plugins.module_utils import _crypto, _stepca_modules
from ansible_collections.mtls.rollout.plugins.modules import certificate_info, csr, private_key


def _issue(run_module, step_ca, tmp_path, common_name, profile, provisioner, password):
    key_path = str(tmp_path / "item.key")
    assert run_module(private_key, {"path": key_path})["changed"] is True
    request = run_module(
        csr,
        {
            "privatekey_path": key_path,
            "common_name": common_name,
            "subject_alt_names": [],
            "profile": profile,
        },
    )
    result = _stepca_modules.run_sign(
        {
            "ca_url": step_ca.url,
            "root": step_ca.root_path,
            "root_fingerprint": None,
            "timeout": 10.0,
            "retries": 1,
            "provisioner": provisioner,
            "provisioner_password": password,
            "provisioner_password_file": None,
            "csr": request["csr"],
            "csrs": None,
            "not_before": None,
            "not_after": None,
            "duration": None,
            "subject_alt_names": [],
            "common_name": common_name,
            "workers": 1,
        },
        check_mode=False,
    )
    cert_path = tmp_path / "item.crt"
    cert_path.write_text(result["fullchain"])
    trust = tmp_path / "trust.pem"
    trust.write_text(step_ca.root_pem)
    return result, {
        "path": str(cert_path),
        "privatekey_path": key_path,
        "ca_path": str(trust),
        "common_name": common_name,
        "subject_alt_names": [],
        "profile": profile,
    }


@pytest.mark.parametrize(
    ("common_name", "profile", "provisioner", "password", "issued_sans"),
    [
        ("John Doe", "client", "clients", CLIENTS_PASSWORD, ["DNS:john doe"]),
        ("web.example.test", "server", "servers", SERVERS_PASSWORD, ["DNS:web.example.test"]),
        ("192.0.2.44", "server", "servers", SERVERS_PASSWORD, ["IP:192.0.2.44"]),
    ],
)
def test_common_name_only_item_is_idempotent(
    run_module, step_ca, tmp_path, common_name, profile, provisioner, password, issued_sans
):
    signed, info_args = _issue(
        run_module, step_ca, tmp_path, common_name, profile, provisioner, password
    )
    assert signed["subject"] == f"CN={common_name}"
    info = run_module(certificate_info, info_args)
    assert info["subject_alt_names"] == issued_sans
    assert info["needs_signing"] is False, info["reasons"]
    assert info["reason"] == "certificate is valid"
    assert info["changed"] is False
    # One serial format: what step_ca_sign returns is what certificate_info shows.
    assert info["serial"] == signed["serial_hex"]
    # The rule that authorised the token is the one that judged the certificate.
    assert [str(san) for san in _crypto.certificate_sans(common_name, [])] == issued_sans
    # And a second look still agrees (no "SANs differ" on the next run).
    assert run_module(certificate_info, info_args)["needs_signing"] is False


def test_common_name_only_item_still_notices_another_name(run_module, step_ca, tmp_path):
    _signed, info_args = _issue(
        run_module, step_ca, tmp_path, "John Doe", "client", "clients", CLIENTS_PASSWORD
    )
    other = run_module(certificate_info, dict(info_args, common_name="Jane Doe"))
    assert other["needs_signing"] is True
    assert "SANs differ: +DNS:jane doe, -DNS:john doe" in other["reasons"]
