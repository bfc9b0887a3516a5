# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The step_ca_init module: four runs, file modes, one-shot regeneration, refused input.

The planning logic is tested on _stepca_init directly (test_stepca_init.py); this
runs the module's main() in-process the way Ansible would.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat
from pathlib import Path

import pytest

from ansible_collections.mtls.rollout.plugins.module_utils import _stepca_init
from ansible_collections.mtls.rollout.plugins.modules import step_ca_init

OWNER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name


def args(tmp_path: Path, **overrides) -> dict:
    base = {
        "config_dir": str(tmp_path / "etc"),
        "data_dir": str(tmp_path / "data"),
        "name": "Module",
        "dns_names": ["localhost"],
        "address": "127.0.0.1:9000",
        "password": "ca-key-password",
        "owner": OWNER,
        "group": GROUP,
        "provisioners": [
            {"name": "clients", "password": "clients-provisioner-password", "profile": "client"},
            {"name": "servers", "password": "servers-provisioner-password", "profile": "server"},
        ],
    }
    base.update(overrides)
    return base


def layout(tmp_path: Path) -> _stepca_init.Layout:
    return _stepca_init.Layout(str(tmp_path / "etc"), str(tmp_path / "data"))


def test_four_runs(run_module, tmp_path):
    check = run_module(step_ca_init, args(tmp_path), check=True)
    assert check["changed"]
    assert not (tmp_path / "etc").exists()
    real = run_module(step_ca_init, args(tmp_path))
    assert real["changed"]
    assert real["root_fingerprint"] != check["root_fingerprint"]  # check mode only planned
    check_again = run_module(step_ca_init, args(tmp_path), check=True)
    assert not check_again["changed"]
    assert check_again["changed_reasons"] == []
    again = run_module(step_ca_init, args(tmp_path))
    assert not again["changed"]
    assert again["root_fingerprint"] == real["root_fingerprint"]
    assert "PRIVATE KEY" not in json.dumps(again)


def test_file_modes(run_module, tmp_path):
    run_module(step_ca_init, args(tmp_path))
    files = layout(tmp_path)
    modes = {
        path: stat.S_IMODE(os.stat(path).st_mode)
        for path, _m, _r in files.managed_files()
        if os.path.exists(path)
    }
    assert modes == {
        files.root_cert: 0o644,
        files.intermediate_cert: 0o644,
        files.root_key: 0o600,
        files.intermediate_key: 0o640,
        files.password_file: 0o600,
        files.ca_json: 0o640,
        files.restart_marker: 0o644,  # until the role has restarted step-ca
    }
    folders = {path: stat.S_IMODE(os.stat(path).st_mode) for path, _m, _r in files.folders()}
    assert sorted(folders.values()) == [0o750, 0o750, 0o755]


def test_regenerate_true_runs_once(run_module, tmp_path):
    first = run_module(step_ca_init, args(tmp_path))
    regenerated = run_module(step_ca_init, args(tmp_path, regenerate=True))
    assert regenerated["changed"] and regenerated["regenerated"]
    assert regenerated["root_fingerprint"] != first["root_fingerprint"]
    marker = Path(layout(tmp_path).regeneration_marker)
    assert stat.S_IMODE(marker.stat().st_mode) == 0o644
    for _ in range(2):
        again = run_module(step_ca_init, args(tmp_path, regenerate=True))
        assert not again["changed"] and not again["regenerated"]
        assert again["root_fingerprint"] == regenerated["root_fingerprint"]
    token = run_module(step_ca_init, args(tmp_path, regenerate="2026-12-01"), check=True)
    assert token["changed"] and token["regenerated"]
    assert json.loads(marker.read_text())["token"] == "true"  # check mode wrote nothing


def test_a_foreign_provisioner_survives_the_module(run_module, tmp_path):
    run_module(step_ca_init, args(tmp_path))
    ca_json = Path(layout(tmp_path).ca_json)
    config = json.loads(ca_json.read_text())
    config["authority"]["provisioners"].append({"type": "ACME", "name": "acme"})
    ca_json.write_text(json.dumps(config))
    result = run_module(step_ca_init, args(tmp_path))
    assert not result["changed"]
    names = [p["name"] for p in json.loads(ca_json.read_text())["authority"]["provisioners"]]
    assert names == ["clients", "servers", "acme"]


@pytest.mark.parametrize("password", ["", "fifteen-chars!!"])
def test_short_provisioner_password_fails_and_writes_nothing(run_module, tmp_path, password):
    bad = args(tmp_path)
    bad["provisioners"][0]["password"] = password
    result = run_module(step_ca_init, bad)
    assert result["failed"]
    assert "provisioner clients: the password must be at least 16 characters" in result["msg"]
    assert not (tmp_path / "etc").exists()


def test_short_password_leaves_an_existing_ca_untouched(run_module, tmp_path):
    run_module(step_ca_init, args(tmp_path))
    before = {
        p: Path(p).read_bytes()
        for p, _m, _r in layout(tmp_path).managed_files()
        if os.path.exists(p)
    }
    bad = args(tmp_path)
    bad["provisioners"][1]["password"] = "short-password"
    assert run_module(step_ca_init, bad)["failed"]
    assert {p: Path(p).read_bytes() for p in before} == before


def test_root_rotation_through_the_module(run_module, tmp_path):
    """Check mode predicts each phase and writes nothing; real runs write the rotation's files
    with their modes and remove them when done."""
    files = layout(tmp_path)
    first = run_module(step_ca_init, args(tmp_path))
    before = {
        p: Path(p).read_bytes()
        for p in map(str, (tmp_path / "etc").rglob("*"))
        if os.path.isfile(p)
    }
    check = run_module(step_ca_init, args(tmp_path, root_rotation="prepare"), check=True)
    assert check["changed"] is True and check["root_rotation"] == "prepared"
    # A root only planned is not handed to the hosts: step-ca could not serve it.
    assert check["transition_root_fingerprints"] == []
    assert not os.path.exists(files.next_root_cert)
    prepared = run_module(step_ca_init, args(tmp_path, root_rotation="prepare"))
    assert prepared["changed"] is True and len(prepared["transition_root_fingerprints"]) == 1
    assert stat.S_IMODE(os.stat(files.next_root_key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(files.next_intermediate_key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(files.next_root_cert).st_mode) == 0o644
    assert run_module(step_ca_init, args(tmp_path))["changed"] is False
    switch = run_module(step_ca_init, args(tmp_path, root_rotation="switch"), check=True)
    assert switch["changed"] is True and os.path.exists(files.next_root_cert)
    switched = run_module(step_ca_init, args(tmp_path, root_rotation="switch"))
    assert switched["root_fingerprint"] == prepared["transition_root_fingerprints"][0]
    assert switched["transition_root_fingerprints"] == [first["root_fingerprint"]]
    assert not os.path.exists(files.next_root_cert)
    refused = run_module(step_ca_init, args(tmp_path, root_rotation="prepare"))
    assert refused["failed"] is True and "run the finish phase" in refused["msg"]
    finished = run_module(step_ca_init, args(tmp_path, root_rotation="finish"))
    assert finished["changed"] is True and finished["transition_root_fingerprints"] == []
    assert not os.path.exists(files.previous_root_cert)
    assert before.keys() == {
        p for p in map(str, (tmp_path / "etc").rglob("*")) if os.path.isfile(p)
    }


def test_a_change_leaves_the_restart_marker_for_the_role(run_module, tmp_path):
    """Written before the files it is about; only a run that changes something writes it."""
    marker = Path(layout(tmp_path).restart_marker)
    first = run_module(step_ca_init, args(tmp_path))
    assert first["restart_marker"] == str(marker) and marker.exists()
    marker.unlink()  # what the role does once step-ca restarted
    assert run_module(step_ca_init, args(tmp_path))["changed"] is False
    assert not marker.exists()
    run_module(step_ca_init, args(tmp_path, rotate_intermediate="one"), check=True)
    assert not marker.exists()
    run_module(step_ca_init, args(tmp_path, rotate_intermediate="one"))
    assert marker.exists()
