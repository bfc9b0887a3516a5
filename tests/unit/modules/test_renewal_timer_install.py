# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""certificate_plan installing the renewal program and timers, and ``state: absent``.

In-process, with real files under a temporary root. systemd cannot run here, so
``systemctl`` is a small script that records its calls and keeps enabled/active state in
files; the Molecule scenario ``renewal`` runs the same code against real systemd.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from mtls_testlib import pem

from ansible_collections.mtls.rollout.plugins.module_utils import _renewal_install
from ansible_collections.mtls.rollout.plugins.modules import certificate_plan

FAKE_SYSTEMCTL = """#!/bin/sh
# Records each call; "enable"/"restart" mark a unit enabled/active, "disable --now" unmarks.
state={state}
echo "$*" >> "$state/calls"
case "$1" in
  is-enabled) test -e "$state/enabled-$3" ;;
  is-active) test -e "$state/active-$3" ;;
  enable) touch "$state/enabled-$2" ;;
  restart) touch "$state/active-$2" ;;
  disable) rm -f "$state/enabled-$3" "$state/active-$3" ;;
  daemon-reload) ;;
  *) exit 1 ;;
esac
"""


@pytest.fixture
def box(tmp_path, test_ca, monkeypatch):
    state = tmp_path / "systemd"
    state.mkdir()
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(FAKE_SYSTEMCTL.format(state=state))
    systemctl.chmod(0o755)
    layout = _renewal_install.Layout(
        program_dir=str(tmp_path / "lib"),
        settings_dir=str(tmp_path / "etc"),
        unit_dir=str(tmp_path / "units"),
        state_dir=str(tmp_path / "var"),
        systemctl=str(systemctl),
    )
    monkeypatch.setattr(_renewal_install, "Layout", lambda: layout)

    class Host:
        dir = tmp_path / "mtls"
        root = tmp_path
        calls = state / "calls"

        def args(self, **item_extra):
            item = {
                "name": "web",
                "common_name": "web",
                "subject_alt_names": ["DNS:web"],
                "key_path": str(self.dir / "web.key"),
                "cert_path": str(self.dir / "web.crt"),
                "renew_timer": {
                    "enabled": True,
                    "ca_url": "https://ca:9000",
                    "reload": ["nginx -t", "systemctl reload nginx"],
                },
            }
            item.update(item_extra)
            return {
                "items": [item],
                "trust_bundle": pem(test_ca.root).decode(),
                "trust_bundle_path": str(self.dir / "ca-bundle.pem"),
                "certificate_dir": str(self.dir),
            }

        def called(self) -> list[str]:
            return self.calls.read_text().splitlines() if self.calls.exists() else []

    return Host()


def _files(root) -> set[str]:
    return {
        os.path.relpath(os.path.join(folder, name), root)
        for folder, _dirs, names in os.walk(root)
        for name in names
        if not folder.startswith(str(root / "systemd"))
    } - {"systemctl"}


def test_timer_installed_then_idempotent(box, run_module):
    checked = run_module(certificate_plan, box.args(), check=True)
    assert checked["changed"] and checked["items"][0]["renew_timer"] == "enabled"
    assert checked["diff"]["before"]["items"]["web"]["renew_timer"] == "absent"
    assert not (box.root / "units").exists()
    assert [c for c in box.called() if not c.startswith("is-")] == []

    result = run_module(certificate_plan, box.args())
    assert result["changed"] and result["items"][0]["renew_timer_changed"]
    service = (box.root / "units" / "mtls-renew-web.service").read_text()
    assert f"ExecStart={sys.executable} -I {box.root}/lib/renew.py {box.root}/etc/web.json" in (
        service
    )
    timer = (box.root / "units" / "mtls-renew-web.timer").read_text()
    assert "OnCalendar=hourly\nRandomizedDelaySec=30m\n" in timer
    settings = json.loads((box.root / "etc" / "web.json").read_text())
    assert settings["reload"] == ["nginx -t", "systemctl reload nginx"]
    assert settings["trust_bundle"] == str(box.dir / "ca-bundle.pem")
    assert settings["renew_before"] == "0.33"
    assert [c for c in box.called() if not c.startswith("is-")] == [
        "daemon-reload",
        "enable mtls-renew-web.timer",
        "restart mtls-renew-web.timer",
    ]
    # The installed program runs on its own, from its folder only.
    proc = subprocess.run(
        [
            sys.executable,
            "-I",
            str(box.root / "lib" / "renew.py"),
            str(box.root / "etc" / "web.json"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("web: renewal failed: cannot read the certificate")

    again = run_module(certificate_plan, box.args())
    assert not again["changed"], again
    assert not again["items"][0]["renew_timer_changed"]


def test_changed_settings_rewrite_and_restart(box, run_module):
    run_module(certificate_plan, box.args())
    before = len(box.called())
    args = box.args()
    args["items"][0]["renew_timer"]["schedule"] = "*:0/15"
    result = run_module(certificate_plan, args)
    assert result["changed"]
    assert "OnCalendar=*:0/15" in (box.root / "units" / "mtls-renew-web.timer").read_text()
    assert box.called()[before:][-2:] == [
        "enable mtls-renew-web.timer",
        "restart mtls-renew-web.timer",
    ]


def test_bad_timer_settings_change_nothing(box, run_module):
    args = box.args()
    args["items"][0]["renew_timer"]["random_delay"] = "30m; rm -rf /"
    result = run_module(certificate_plan, args)
    assert result["failed"] and "random_delay" in result["msg"]
    assert _files(box.root) == set()
    args = box.args(name="web server")
    assert "needs a name of letters" in run_module(certificate_plan, args)["msg"]
    args = box.args()
    args["items"][0]["renew_timer"]["ca_url"] = ""
    assert "needs a ca_url" in run_module(certificate_plan, args)["msg"]
    assert _files(box.root) == set()


def test_timer_turned_off_is_removed(box, run_module):
    run_module(certificate_plan, box.args())
    result = run_module(certificate_plan, box.args(renew_timer={"enabled": False}))
    assert result["changed"] and result["items"][0]["renew_timer"] == "absent"
    assert not (box.root / "units" / "mtls-renew-web.timer").exists()
    assert not (box.root / "etc" / "web.json").exists()
    assert "disable --now mtls-renew-web.timer" in box.called()
    assert not run_module(certificate_plan, box.args(renew_timer={"enabled": False}))["changed"]


def test_state_absent_removes_all_and_is_idempotent(box, run_module):
    run_module(certificate_plan, box.args())
    (box.dir / "web.crt").write_text("not yet signed\n")
    (box.dir / "web.csr").write_text("a CSR left by hand\n")
    (box.dir / "web.key.next").write_text("a staged key\n")
    before = _files(box.root)
    assert {"mtls/web.key", "units/mtls-renew-web.timer", "units/mtls-renew-web.service"} <= before

    absent = box.args(state="absent")
    checked = run_module(certificate_plan, absent, check=True)
    assert checked["changed"] and _files(box.root) == before
    assert checked["items"][0]["removed"] == [
        str(box.dir / name) for name in ("web.key", "web.key.next", "web.crt", "web.csr")
    ]
    assert checked["diff"]["after"]["items"]["web"] == {"state": "absent", "renew_timer": "absent"}
    assert checked["diff"]["before"]["items"]["web"]["renew_timer"] == "enabled"

    result = run_module(certificate_plan, absent)
    assert result["changed"] and result["needs_signing"] == []
    assert _files(box.root) - before == set()
    left = {path for path in _files(box.root) if not path.startswith("lib/")}
    assert left == {"mtls/ca-bundle.pem"}
    assert "disable --now mtls-renew-web.timer" in box.called()

    again = run_module(certificate_plan, absent)
    assert not again["changed"]
    assert again["items"][0]["reason"] == "absent"


@pytest.mark.parametrize("state", ["present", "absent"])
def test_item_name_never_reaches_outside_the_timer_folders(box, run_module, state):
    # Only names of letters, digits, '.', '_' and '-' ever get a timer; an item named with
    # '../' must not make the removal of a timer that was never installed delete other
    # files (here <root>/victim.json and <root>/victim.reload-pending).
    for folder in ("etc", "var"):  # as on a host where another item has a timer
        (box.root / folder).mkdir()
    (box.root / "victim.json").write_text("{}\n")
    (box.root / "victim.reload-pending").write_text("someone else's\n")
    args = box.args(name="../victim", state=state, renew_timer={"enabled": False})
    checked = run_module(certificate_plan, args, check=True)
    assert checked["items"][0]["renew_timer"] == "absent"
    run_module(certificate_plan, args)
    assert (box.root / "victim.json").read_text() == "{}\n"
    assert (box.root / "victim.reload-pending").read_text() == "someone else's\n"


@pytest.mark.parametrize("what", ["cert_path", "key_path", "name"])
def test_a_control_character_cannot_write_a_line_into_the_units(box, run_module, what):
    # A newline in the certificate path would have started a line of its own in the
    # service's Description=, here an ExecStartPre= that root runs.
    args = box.args()
    args["items"][0][what] += "\n[Service]\nExecStartPre=/bin/touch /tmp/owned"
    result = run_module(certificate_plan, args)
    assert result["failed"]
    assert f"{what} holds a control character" in result["msg"]
    assert _files(box.root) == set()


def _systemd_reads(unit_file) -> dict[str, str]:
    """What systemd makes of a unit file: its Description and command line, after it has
    expanded the specifiers (systemd-analyze, the parser of the real systemd)."""
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit_file)],
        env=dict(os.environ, SYSTEMD_LOG_LEVEL="debug"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    read = {"output": proc.stdout}
    for line in proc.stdout.splitlines():
        key, separator, value = line.strip().partition(": ")
        if separator and key in ("Description", "Command Line"):
            read[key] = value
    return read


def test_paths_with_specifier_and_space_characters_reach_systemd_unchanged(
    box, run_module, tmp_path, monkeypatch
):
    # '%' starts a specifier (%h is root's home) and '$' a variable in unit files; a space
    # would split the command line. Each must come through as written.
    # (The module's path options expand variables themselves, so '$' is in Python's path.)
    odd = tmp_path / "odd %h dir"
    python = tmp_path / "python $HOME" / "python3"
    for folder in (odd, python.parent):
        folder.mkdir()
    python.symlink_to(sys.executable)
    monkeypatch.setattr(sys, "executable", str(python))
    cert_path = str(odd / "web%n.crt")
    result = run_module(certificate_plan, box.args(cert_path=cert_path))
    assert not result.get("failed"), result
    service = box.root / "units" / "mtls-renew-web.service"
    # systemd-analyze wants the unit under a name it accepts, and the program there.
    copy = tmp_path / "check-web.service"
    copy.write_bytes(service.read_bytes())
    read = _systemd_reads(copy)
    assert read["Description"] == f"Renew the certificate web ({cert_path}) at step-ca"
    program, settings = box.root / "lib" / "renew.py", box.root / "etc" / "web.json"
    # systemd shows the words it will run, quoting one that holds a space and marking a
    # literal '$' with a backslash; it found the program there (it says when it did not).
    shown = str(python).replace("$", "\\$")
    assert read["Command Line"] == f'"{shown}" -I {program} {settings}'
    assert "is not executable" not in read["output"]
