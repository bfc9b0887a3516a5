# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_stepca_init: what a new CA needs, what an existing one keeps, and that step-ca runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_csr
from cryptography import x509
from stepca_server import free_port, launch, stop, wait_healthy

from ansible_collections.mtls.rollout.plugins.module_utils import (
    _io,
    _stepca,
    _stepca_bootstrap,
    _stepca_init,
)

CA_PASSWORD = "ca-key-password"
CLIENTS_PASSWORD = "clients-provisioner-password"
SERVERS_PASSWORD = "servers-provisioner-password"


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
                "password": SERVERS_PASSWORD,
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
    managed = {path for path, _mode, _readable in layout.managed_files()}
    # The regeneration marker is only written by a regeneration, the rotation files by a rotation.
    assert written == managed - {layout.regeneration_marker, *layout.rotation_files()}
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
    assert again.regenerated
    assert "regenerating the PKI (regenerate=true)" in again.reasons


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"password": "short"}, "at least 8"),
        ({"password": "seven77"}, "CA password"),
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


# --- ca.json is merged: what the module does not manage survives ----------------------------

FOREIGN_PROVISIONER = {
    "type": "ACME",
    "name": "acme",
    "forceCN": True,
    "claims": {"maxTLSCertDuration": "2160h"},
}


def _layout(tmp_path: Path) -> _stepca_init.Layout:
    return _stepca_init.Layout(str(tmp_path / "etc"), str(tmp_path / "data"))


def _read_ca_json(tmp_path: Path) -> dict:
    return json.loads(Path(_layout(tmp_path).ca_json).read_text())


def _edit_ca_json(tmp_path: Path, edit) -> dict:
    config = _read_ca_json(tmp_path)
    edit(config)
    Path(_layout(tmp_path).ca_json).write_text(json.dumps(config, indent=4))
    return config


def _by_name(config: dict) -> dict:
    return {p["name"]: p for p in config["authority"]["provisioners"]}


def _add_operator_settings(config: dict) -> None:
    """What an operator adds by hand or with step's own tools."""
    provisioners = config["authority"]["provisioners"]
    provisioners.insert(1, dict(FOREIGN_PROVISIONER))
    provisioners[0]["claims"]["disableRenewal"] = True  # clients: a claim the module does not set
    provisioners[0]["claims"]["maxTLSCertDuration"] = "1m"  # ... and one it owns: put back
    config["authority"]["backdate"] = "2m"
    config["authority"]["claims"] = {"enableSSHCA": False}
    config["crl"] = {"enabled": False}
    config["tls"]["minVersion"] = 1.3
    config["logger"] = {"format": "json"}
    config["db"]["badgerFileLoadingMode"] = "FileIO"


def test_operator_settings_and_other_provisioners_survive(tmp_path):
    apply(_stepca_init.plan(params(tmp_path)))
    _edit_ca_json(tmp_path, _add_operator_settings)
    changed = params(tmp_path)
    changed["provisioners"][1]["max_duration"] = "48h"  # servers: a change the module makes

    apply(_stepca_init.plan(changed))

    config = _read_ca_json(tmp_path)
    provisioners = _by_name(config)
    assert [p["name"] for p in config["authority"]["provisioners"]] == [
        "clients",
        "acme",
        "servers",
    ]
    assert provisioners["acme"] == FOREIGN_PROVISIONER
    assert provisioners["clients"]["claims"] == {
        "disableRenewal": True,
        "minTLSCertDuration": "5m",
        "maxTLSCertDuration": "24h",
        "defaultTLSCertDuration": "1h",
    }
    assert provisioners["servers"]["claims"]["maxTLSCertDuration"] == "48h"
    assert config["authority"]["backdate"] == "2m"
    assert config["authority"]["claims"] == {"enableSSHCA": False}
    assert config["crl"] == {"enabled": False}
    assert config["tls"]["minVersion"] == 1.3
    assert config["logger"] == {"format": "json"}
    assert config["db"] == {
        "type": "badgerv2",
        "dataSource": str(tmp_path / "data" / "db"),
        "badgerFileLoadingMode": "FileIO",
    }
    again = _stepca_init.plan(changed)
    assert again.writes == []
    assert again.reasons == []


def test_owned_settings_are_put_back(tmp_path):
    apply(_stepca_init.plan(params(tmp_path)))

    def edit(config):
        config["address"] = ":1234"
        config["dnsNames"] = ["elsewhere"]
        config["db"]["dataSource"] = "/tmp/other"

    _edit_ca_json(tmp_path, edit)
    again = _stepca_init.plan(params(tmp_path))
    assert again.reasons == ["ca.json updated"]
    apply(again)
    config = _read_ca_json(tmp_path)
    assert config["address"] == "127.0.0.1:9000"
    assert config["dnsNames"] == ["localhost", "127.0.0.1"]
    assert config["db"]["dataSource"] == str(tmp_path / "data" / "db")


def test_a_database_of_another_type_is_kept(tmp_path):
    apply(_stepca_init.plan(params(tmp_path)))
    mysql = {"type": "mysql", "dataSource": "user:pass@tcp(db:3306)/", "database": "stepca"}
    _edit_ca_json(tmp_path, lambda config: config.update(db=dict(mysql)))
    again = _stepca_init.plan(params(tmp_path))
    assert again.writes == []


def test_a_new_provisioner_goes_last_and_a_dropped_one_stays(tmp_path):
    apply(_stepca_init.plan(params(tmp_path)))
    _edit_ca_json(tmp_path, lambda c: c["authority"]["provisioners"].append(FOREIGN_PROVISIONER))
    changed = params(tmp_path)
    ops = dict(changed["provisioners"][0], name="ops", password="ops-provisioner-password")
    changed["provisioners"] = [changed["provisioners"][1], ops]  # clients dropped, ops added
    plan = _stepca_init.plan(changed)
    assert "provisioner ops: new key" in plan.reasons
    apply(plan)
    names = [p["name"] for p in _read_ca_json(tmp_path)["authority"]["provisioners"]]
    assert names == ["clients", "servers", "acme", "ops"]
    assert [p["name"] for p in plan.provisioners] == ["servers", "ops"]


def test_a_provisioner_of_another_type_with_the_module_s_name_is_replaced(tmp_path):
    apply(_stepca_init.plan(params(tmp_path)))

    def edit(config):
        config["authority"]["provisioners"][0] = dict(FOREIGN_PROVISIONER, name="clients")

    _edit_ca_json(tmp_path, edit)
    plan = _stepca_init.plan(params(tmp_path))
    assert "provisioner clients: replaced a ACME provisioner" in plan.reasons
    apply(plan)
    clients = _by_name(_read_ca_json(tmp_path))["clients"]
    assert clients["type"] == "JWK"
    assert "forceCN" not in clients


@pytest.mark.parametrize(
    "edit",
    [
        lambda c: c["authority"].update(provisioners={"clients": {}}),
        lambda c: c.clear() or c.update(just="a string"),
    ],
    ids=["provisioners-not-a-list", "unrelated-document"],
)
def test_odd_ca_json_is_handled(tmp_path, edit):
    apply(_stepca_init.plan(params(tmp_path)))
    _edit_ca_json(tmp_path, edit)
    if isinstance(_read_ca_json(tmp_path).get("authority"), dict):
        with pytest.raises(_stepca_init.StepCAInitError, match="not a list"):
            _stepca_init.plan(params(tmp_path))
    else:
        plan = _stepca_init.plan(params(tmp_path))
        apply(plan)
        config = _read_ca_json(tmp_path)
        assert config["just"] == "a string"
        assert [p["name"] for p in config["authority"]["provisioners"]] == ["clients", "servers"]


# --- regenerate: once per value ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "token"),
    [
        (False, ""),
        (None, ""),
        ("", ""),
        ("false", ""),
        ("No", ""),
        (True, "true"),
        ("yes", "true"),
        ("True", "true"),
        ("2026-11-29", "2026-11-29"),
        (20261129, "20261129"),
    ],
)
def test_regeneration_token(value, token):
    assert _stepca_init.regeneration_token(value) == token


def test_regenerate_is_a_one_shot(tmp_path):
    first = _stepca_init.plan(params(tmp_path))
    apply(first)
    regenerated = _stepca_init.plan(params(tmp_path, regenerate=True))
    assert regenerated.regenerated
    apply(regenerated)
    marker = json.loads(Path(_layout(tmp_path).regeneration_marker).read_text())
    assert marker == {"token": "true", "root_fingerprint": regenerated.root_fingerprint}

    # Left set to true: nothing more happens.
    again = _stepca_init.plan(params(tmp_path, regenerate=True))
    assert not again.regenerated
    assert again.writes == []
    assert again.root_fingerprint == regenerated.root_fingerprint
    # Turned off: nothing either.
    assert _stepca_init.plan(params(tmp_path, regenerate=False)).writes == []

    # A new token regenerates once more.
    newer = _stepca_init.plan(params(tmp_path, regenerate="2026-12-01"))
    assert newer.regenerated
    assert "regenerating the PKI (regenerate=2026-12-01)" in newer.reasons
    apply(newer)
    assert newer.root_fingerprint not in {first.root_fingerprint, regenerated.root_fingerprint}
    assert _stepca_init.plan(params(tmp_path, regenerate="2026-12-01")).writes == []


def test_regenerate_on_a_new_host_records_the_token(tmp_path):
    plan = _stepca_init.plan(params(tmp_path, regenerate=True))
    apply(plan)
    assert _stepca_init.plan(params(tmp_path, regenerate=True)).writes == []


def test_regenerate_keeps_the_database_and_other_provisioners(tmp_path):
    apply(_stepca_init.plan(params(tmp_path)))
    _edit_ca_json(tmp_path, lambda c: c["authority"]["provisioners"].append(FOREIGN_PROVISIONER))
    before = _by_name(_read_ca_json(tmp_path))
    plan = _stepca_init.plan(params(tmp_path, regenerate="new-pki"))
    assert not [c.path for c in plan.writes if c.path.startswith(str(tmp_path / "data"))]
    apply(plan)
    after = _by_name(_read_ca_json(tmp_path))
    assert after["acme"] == FOREIGN_PROVISIONER
    assert after["clients"]["key"]["kid"] != before["clients"]["key"]["kid"]
    assert after["servers"]["key"]["kid"] != before["servers"]["key"]["kid"]


def test_regenerate_recovers_from_a_lost_ca_password(tmp_path):
    apply(_stepca_init.plan(params(tmp_path)))
    plan = _stepca_init.plan(params(tmp_path, password="a-new-ca-password", regenerate="lost"))
    assert "CA password file written" in plan.reasons
    apply(plan)
    assert _stepca_init.plan(params(tmp_path, password="a-new-ca-password")).writes == []


# --- provisioner passwords ------------------------------------------------------------------


@pytest.mark.parametrize("length", [8, 15])
def test_short_provisioner_passwords_are_refused(tmp_path, length):
    bad = params(tmp_path)
    bad["provisioners"][1]["password"] = "x" * length
    with pytest.raises(_stepca_init.StepCAInitError) as error:
        _stepca_init.plan(bad)
    message = str(error.value)
    assert message.startswith("provisioner servers: the password must be at least 16 characters")
    assert "GET /provisioners" in message
    assert "x" * length not in message
    assert not (tmp_path / "etc").exists()


def test_a_sixteen_character_provisioner_password_is_enough(tmp_path):
    ok = params(tmp_path)
    ok["provisioners"][1]["password"] = "x" * 16
    assert _stepca_init.plan(ok).writes


# --- files are read through _io ----------------------------------------------------------------


def test_files_are_read_through_io(tmp_path, monkeypatch):
    apply(_stepca_init.plan(params(tmp_path)))
    seen = []
    real = _io.read_bytes

    def spy(path, *args, **kwargs):
        seen.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(_io, "read_bytes", spy)
    _stepca_init.plan(params(tmp_path))
    assert _layout(tmp_path).ca_json in seen
    assert _layout(tmp_path).root_key in seen


def test_a_folder_in_place_of_ca_json_is_refused(tmp_path):
    Path(_layout(tmp_path).ca_json).mkdir(parents=True)
    with pytest.raises(_stepca_init.StepCAInitError, match="not a regular file"):
        _stepca_init.plan(params(tmp_path))


# --- the merged ca.json runs in a real step-ca --------------------------------------------------


def test_real_step_ca_serves_merged_provisioners(tmp_path, step_ca_binary):
    port = free_port()
    apply(_stepca_init.plan(params(tmp_path, address=f"127.0.0.1:{port}")))
    ops = _stepca_bootstrap.make_jwk_provisioner(
        "ops",
        "ops-provisioner-password",
        {"maxTLSCertDuration": "1h", "defaultTLSCertDuration": "1h"},
    )
    _edit_ca_json(tmp_path, lambda c: c["authority"]["provisioners"].insert(0, ops))
    plan = _stepca_init.plan(params(tmp_path, address=f"127.0.0.1:{port}"))
    assert plan.writes == []
    (tmp_path / "data").mkdir()
    layout = _layout(tmp_path)
    log = tmp_path / "step-ca.log"
    url = f"https://127.0.0.1:{port}"
    proc = launch(step_ca_binary, layout.password_file, layout.ca_json, log)
    try:
        wait_healthy(url, plan.root_pem, proc, log)
        client = _stepca.StepCAClient(url, root_pem=plan.root_pem, retries=1)
        assert [p["name"] for p in client.provisioners()] == ["ops", "clients", "servers"]
    finally:
        stop(proc)


@pytest.mark.parametrize(
    "damage", ["root key removed", "root key of another root", "root cert removed"]
)
def test_a_half_missing_root_is_never_replaced_silently(tmp_path, damage):
    # A root certificate without its key (the key moved offline, a partial restore) or a
    # key without its certificate: making a new root would void every certificate and
    # trust bundle, so only regenerate may do it.
    first = _stepca_init.plan(params(tmp_path))
    apply(first)
    layout = _stepca_init.Layout(str(tmp_path / "etc"), str(tmp_path / "data"))
    if damage == "root key removed":
        Path(layout.root_key).unlink()
    elif damage == "root cert removed":
        Path(layout.root_cert).unlink()
    else:
        other = _stepca_init.plan(params(tmp_path / "other"))
        Path(layout.root_key).write_bytes(
            next(c.content for c in other.writes if c.path.endswith("root_ca_key"))
        )
    with pytest.raises(_stepca_init.StepCAInitError, match="never regenerated silently"):
        _stepca_init.plan(params(tmp_path))
    again = _stepca_init.plan(params(tmp_path, regenerate=True))
    assert again.regenerated
