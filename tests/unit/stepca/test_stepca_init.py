# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_stepca_init: what a new CA needs, what an existing one keeps, and that step-ca runs it."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_csr
from cryptography import x509
from stepca_server import free_port, launch, stop, wait_healthy

from ansible_collections.mtls.rollout.plugins.module_utils import _stepca, _stepca_init

CA_PASSWORD = "ca-key-password"
CLIENTS_PASSWORD = "clients-password"


def params(tmp_path: Path, **overrides) -> dict:
    base = {
        "config_dir": str(tmp_path / "etc"),
        "data_dir": str(tmp_path / "data"),
        "name": "Unit",
        "dns_names": ["localhost", "127.0.0.1"],
        "address": "127.0.0.1:9000",
        "password": CA_PASSWORD,
        "regenerate": False,
        "provisioners": [
            {
                "name": "clients",
                "password": CLIENTS_PASSWORD,
                "profile": "client",
                "default_duration": "1h",
                "min_duration": "5m",
                "max_duration": "24h",
            },
            {
                "name": "servers",
                "password": "servers-password",
                "profile": "server",
                "default_duration": "1h",
                "min_duration": "5m",
                "max_duration": "24h",
            },
        ],
    }
    base.update(overrides)
    return base


def apply(plan: _stepca_init.Plan) -> None:
    """Write a plan's files the simple way; the module's atomic writes are tested in Molecule."""
    for change in plan.writes:
        path = Path(change.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(change.content)


def test_new_ca_gets_every_file(tmp_path):
    plan = _stepca_init.plan(params(tmp_path))
    layout = _stepca_init.Layout(str(tmp_path / "etc"), str(tmp_path / "data"))
    written = {change.path for change in plan.writes}
    assert written == {path for path, _mode, _readable in layout.managed_files()}
    assert "root CA missing: created" in plan.reasons
    assert "provisioner clients: new key" in plan.reasons
    assert len(plan.root_fingerprint) == 64


def test_root_and_intermediate_are_a_chain_with_path_lengths(tmp_path):
    plan = _stepca_init.plan(params(tmp_path))
    apply(plan)
    layout = _stepca_init.Layout(str(tmp_path / "etc"), str(tmp_path / "data"))
    root = x509.load_pem_x509_certificate(Path(layout.root_cert).read_bytes())
    inter = x509.load_pem_x509_certificate(Path(layout.intermediate_cert).read_bytes())
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 1
    assert inter.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    assert inter.issuer == root.subject
    assert root.subject.rfc4514_string() == "CN=Unit Root CA"


def test_keys_are_encrypted_and_secrets_stay_out_of_ca_json(tmp_path):
    apply(_stepca_init.plan(params(tmp_path)))
    layout = _stepca_init.Layout(str(tmp_path / "etc"), str(tmp_path / "data"))
    for key in (layout.root_key, layout.intermediate_key):
        assert Path(key).read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    config = Path(layout.ca_json).read_text()
    assert CLIENTS_PASSWORD not in config
    assert CA_PASSWORD not in config
    assert Path(layout.password_file).read_text() == CA_PASSWORD


def test_second_plan_changes_nothing(tmp_path):
    apply(_stepca_init.plan(params(tmp_path)))
    again = _stepca_init.plan(params(tmp_path))
    assert again.writes == []
    assert again.reasons == []
    assert again.before == again.after


def test_claims_change_keeps_the_provisioner_key(tmp_path):
    first = _stepca_init.plan(params(tmp_path))
    apply(first)
    changed = params(tmp_path)
    changed["provisioners"][0]["max_duration"] = "48h"
    second = _stepca_init.plan(changed)
    assert [c.path for c in second.writes] == [str(tmp_path / "etc" / "config" / "ca.json")]
    assert second.reasons == ["ca.json updated"]
    assert second.provisioners == first.provisioners


def test_provisioner_password_change_gives_a_new_key(tmp_path):
    first = _stepca_init.plan(params(tmp_path))
    apply(first)
    changed = params(tmp_path)
    changed["provisioners"][0]["password"] = "another-clients-password"
    second = _stepca_init.plan(changed)
    assert "provisioner clients: password changed, new key" in second.reasons
    kids = {p["name"]: p["kid"] for p in second.provisioners}
    old_kids = {p["name"]: p["kid"] for p in first.provisioners}
    assert kids["clients"] != old_kids["clients"]
    assert kids["servers"] == old_kids["servers"]


def test_wrong_ca_password_fails_without_regenerating(tmp_path):
    apply(_stepca_init.plan(params(tmp_path)))
    with pytest.raises(_stepca_init.StepCAInitError, match="cannot decrypt") as error:
        _stepca_init.plan(params(tmp_path, password="not-the-ca-password"))
    assert "not-the-ca-password" not in str(error.value)


def test_regenerate_replaces_the_root(tmp_path):
    first = _stepca_init.plan(params(tmp_path))
    apply(first)
    again = _stepca_init.plan(params(tmp_path, regenerate=True))
    assert again.root_fingerprint != first.root_fingerprint
    assert "regenerating the PKI" in again.reasons


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"password": "short"}, "at least 8"),
        ({"dns_names": []}, "dns_names"),
    ],
)
def test_bad_input_is_refused(tmp_path, override, message):
    with pytest.raises(_stepca_init.StepCAInitError, match=message):
        _stepca_init.plan(params(tmp_path, **override))


def test_duplicate_provisioner_names_are_refused(tmp_path):
    bad = params(tmp_path)
    bad["provisioners"][1]["name"] = "clients"
    with pytest.raises(_stepca_init.StepCAInitError, match="unique: clients"):
        _stepca_init.plan(bad)


def test_real_step_ca_runs_the_planned_files_and_signs(tmp_path, step_ca_binary):
    port = free_port()
    plan = _stepca_init.plan(params(tmp_path, address=f"127.0.0.1:{port}"))
    apply(plan)
    (tmp_path / "data").mkdir()
    layout = _stepca_init.Layout(str(tmp_path / "etc"), str(tmp_path / "data"))
    log = tmp_path / "step-ca.log"
    url = f"https://127.0.0.1:{port}"
    proc = launch(step_ca_binary, layout.password_file, layout.ca_json, log)
    try:
        wait_healthy(url, plan.root_pem, proc, log)
        client = _stepca.StepCAClient(url, root_pem=plan.root_pem, retries=1)
        assert [p["name"] for p in client.provisioners()] == ["clients", "servers"]
        key = client.provisioner_key("clients", CLIENTS_PASSWORD.encode())
        csr = make_csr("John Doe", emails=("john.doe@example.com",))
        signed = client.sign(key, _stepca.SignRequest(csr=csr))
        leaf = x509.load_pem_x509_certificate(signed.certificate.encode())
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(usages) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    finally:
        stop(proc)
