# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The certificate role over several pseudo-hosts (``ansible_connection: local``, one folder
each) against the real step-ca on loopback: fleet semantics that only show with many hosts.

- ``serial: 1``: every CSR is signed exactly once (counted in step-ca's log);
- a role-level ``when:`` false on the first host does not skip signing for the others;
- one refused item fails its own host with the CA's reason, the other host installs;
- the second run changes nothing and asks the CA for nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CLIENTS_PASSWORD, REPO, SERVERS_PASSWORD
from cryptography import x509

HOSTS = ("h1", "h2", "h3")


@pytest.fixture
def fleet(step_ca, tmp_path):
    """Run a play over pseudo-hosts h1..h3; returns ``run(play) -> (rc, output)``."""
    ansible_playbook = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent))
    if ansible_playbook is None:
        pytest.skip("ansible-playbook is not installed next to this Python")
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "certificate_ca_url": step_ca.url,
                "certificate_ca_root_fingerprint": step_ca.root_fingerprint,
                "certificate_ca_provisioner_passwords": {
                    "clients": CLIENTS_PASSWORD,
                    "servers": SERVERS_PASSWORD,
                },
            },
            "hosts": {
                host: {
                    "certificate_dir": str(tmp_path / host),
                    "certificate_items": [
                        {
                            "name": "server",
                            "common_name": f"{host}.example.test",
                            "subject_alt_names": [f"DNS:{host}.example.test"],
                        }
                    ],
                }
                for host in HOSTS
            },
        }
    }
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))

    def run(play: str, extra: dict | None = None, check: bool = False) -> tuple[int, str]:
        (tmp_path / "play.yml").write_text(play)
        (tmp_path / "extra.json").write_text(json.dumps(extra or {}))
        env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0")
        env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO / "build" / "collections")
        proc = subprocess.run(
            [
                ansible_playbook,
                "-i",
                str(tmp_path / "inventory.json"),
                "-e",
                f"@{tmp_path / 'extra.json'}",
                str(tmp_path / "play.yml"),
                *(["--check", "--diff"] if check else []),
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        return proc.returncode, proc.stdout + proc.stderr

    run.dir = tmp_path
    return run


def _signs(step_ca) -> int:
    """How many /1.0/sign requests step-ca has answered so far."""
    return len(re.findall(r"/1\.0/sign\b", Path(step_ca.log_path).read_text()))


def _recap(output: str) -> dict[str, dict[str, int]]:
    recap = {}
    for line in output.split("PLAY RECAP", 1)[1].splitlines():
        match = re.match(r"^(\S+)\s*:\s*(.*)$", line.strip())
        if match:
            recap[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
    return recap


def _leaf(folder: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate((folder / "server.crt").read_bytes())


PLAY = """
- name: Certificates
  hosts: {hosts}
  gather_facts: false
  {serial}
  roles:
    - role: mtls.rollout.certificate
      {when}
"""


def test_serial_batches_sign_each_csr_exactly_once_and_rerun_asks_nothing(fleet, step_ca):
    play = PLAY.format(hosts="h1:h2", serial="serial: 1", when="")
    before = _signs(step_ca)
    rc, output = fleet(play)
    assert rc == 0, output
    assert _signs(step_ca) - before == 2, output
    for host in ("h1", "h2"):
        assert _leaf(fleet.dir / host).subject.rfc4514_string() == f"CN={host}.example.test"

    rc, output = fleet(play)
    assert rc == 0, output
    assert _signs(step_ca) - before == 2, "an idempotent run contacted the CA's sign endpoint"
    assert all(counts["changed"] == 0 for counts in _recap(output).values()), output


def test_role_when_false_on_the_first_host_still_signs_the_others(fleet, step_ca):
    play = PLAY.format(hosts="h1:h2:h3", serial="", when="when: inventory_hostname != 'h1'")
    before = _signs(step_ca)
    rc, output = fleet(play)
    assert rc == 0, output
    assert _signs(step_ca) - before == 2, output
    assert not (fleet.dir / "h1").exists()
    for host in ("h2", "h3"):
        assert _leaf(fleet.dir / host).subject.rfc4514_string() == f"CN={host}.example.test"


def test_include_role_skipping_the_first_host_after_an_earlier_run_still_signs(fleet, step_ca):
    """A host left out by include_role's `when:` keeps its facts from an earlier run of the
    role; it must not be taken for the batch's signer."""
    rc, output = fleet(PLAY.format(hosts="h1", serial="", when=""))
    assert rc == 0, output
    before = _signs(step_ca)
    play = """
- name: Certificates again, not on h1
  hosts: h1:h2:h3
  gather_facts: false
  tasks:
    - name: Run the role on h2 and h3 only
      ansible.builtin.include_role:
        name: mtls.rollout.certificate
      when: inventory_hostname != 'h1'
"""
    rc, output = fleet(play)
    assert rc == 0, output
    assert _signs(step_ca) - before == 2, output
    for host in ("h2", "h3"):
        assert _leaf(fleet.dir / host).subject.rfc4514_string() == f"CN={host}.example.test"


def test_a_refused_item_fails_its_host_only_with_the_cas_reason(fleet, step_ca):
    play = PLAY.format(hosts="h1:h2", serial="", when="")
    # h1 asks for a lifetime above the provisioner's maximum (24h).
    play = play.replace(
        "roles:",
        "vars:\n    __long: \"{{ {'duration': '48h'} if inventory_hostname == 'h1' else {} }}\"\n"
        "  roles:",
    )
    play = play.replace(
        "- role: mtls.rollout.certificate",
        "- role: mtls.rollout.certificate\n"
        '      certificate_items: "{{ [hostvars[inventory_hostname].certificate_items[0]'
        ' | combine(__long)] }}"',
    )
    rc, output = fleet(play)
    assert rc != 0, output
    recap = _recap(output)
    assert recap["h1"]["failed"] == 1 and recap["h2"]["failed"] == 0, output
    failure = re.search(r"fatal: \[h1\]: FAILED! =>.*?msg: '(.*?)'\n(?! )", output, re.S)
    assert failure, output
    message = " ".join(failure.group(1).split())
    assert message.startswith("server: step-ca did not sign it: requested duration 48h"), message
    assert "fatal: [h2]" not in output
    assert not (fleet.dir / "h1" / "server.crt").exists()
    assert _leaf(fleet.dir / "h2").subject.rfc4514_string() == "CN=h2.example.test"


def test_each_host_is_signed_with_its_own_ca_settings(fleet, step_ca):
    """h1, the first host (which fetches the roots), pins another root: it fails with a
    fingerprint error and is not signed with the others' settings, and the others go on;
    h3 reaches the same CA by another URL and is signed in its own group."""
    play = PLAY.format(hosts="h1:h2:h3", serial="", when="").replace(
        "roles:",
        "vars:\n"
        "    certificate_ca_root_fingerprint: >-\n"
        "      {{ '0' * 64 if inventory_hostname == 'h1' else __pinned }}\n"
        "    certificate_ca_url: >-\n"
        "      {{ __url | replace('127.0.0.1', 'localhost') if inventory_hostname == 'h3'"
        " else __url }}\n"
        "  roles:",
    )
    before = _signs(step_ca)
    rc, output = fleet(play, {"__pinned": step_ca.root_fingerprint, "__url": step_ca.url})
    assert rc != 0, output
    recap = _recap(output)
    assert recap["h1"]["failed"] == 1, output
    assert recap["h2"]["failed"] == 0 and recap["h3"]["failed"] == 0, output
    assert re.search(r"fatal: \[h1\].*?fingerprint", output, re.S), output
    assert not (fleet.dir / "h1" / "server.crt").exists()
    assert _signs(step_ca) - before == 2, output
    for host in ("h2", "h3"):
        assert _leaf(fleet.dir / host).subject.rfc4514_string() == f"CN={host}.example.test"


def test_check_mode_predicts_writes_nothing_and_signs_nothing(fleet, step_ca):
    play = PLAY.format(hosts="h1:h2", serial="", when="")
    before = _signs(step_ca)
    rc, output = fleet(play, check=True)
    assert rc == 0, output
    assert not (fleet.dir / "h1").exists() and not (fleet.dir / "h2").exists()
    assert "server would be signed: private key" in output
    assert all(counts["changed"] > 0 for counts in _recap(output).values()), output

    rc, output = fleet(play)
    assert rc == 0, output
    rc, output = fleet(play, check=True)
    assert rc == 0, output
    assert all(counts["changed"] == 0 for counts in _recap(output).values()), output
    assert _signs(step_ca) - before == 2
