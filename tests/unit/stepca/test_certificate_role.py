# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The certificate role over several pseudo-hosts (``ansible_connection: local``, one folder
each) against the real step-ca on loopback: fleet semantics that only show with many hosts.

- ``serial: 1``: every CSR is signed exactly once (counted in step-ca's log);
- a role-level ``when:`` false on the first host does not skip signing for the others;
- one refused item fails its own host with the CA's reason, the other host installs;
- the second run changes nothing and asks the CA for nothing (the root comes from the
  controller's cache);
- each signing group is signed with its own hosts' settings, and hosts of one group that
  disagree are refused by name; the CA settings may come from ``module_defaults``;
- a strategy other than linear fails clearly; check mode on a host without
  python3-cryptography reports instead of failing; handlers are notified per item;
- every issued certificate is in the issuance record (leaders of parallel signing groups
  write the same file), check mode writes none, and one that cannot be recorded is not
  installed: its host fails, the others install theirs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import CLIENTS_PASSWORD, REPO, SERVERS_PASSWORD
from cryptography import x509
from cryptography.hazmat.primitives import serialization

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
                # The controller's root cache, per test (never in the user's home).
                "certificate_ca_root_cache_dir": str(tmp_path / "roots"),
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
        env["ANSIBLE_HOME"] = str(tmp_path / "ansible-home")
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


def _requests(step_ca) -> int:
    """How many requests of any kind step-ca has answered so far."""
    return len(re.findall(r" path=\S+ ", Path(step_ca.log_path).read_text()))


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

    requests = _requests(step_ca)
    rc, output = fleet(play)
    assert rc == 0, output
    assert _requests(step_ca) == requests, "an idempotent run contacted the CA"
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
    record = fleet.dir / "issued-certificates.yml"
    before = _signs(step_ca)
    rc, output = fleet(play, check=True)
    assert rc == 0, output
    assert not (fleet.dir / "h1").exists() and not (fleet.dir / "h2").exists()
    assert not record.exists() and not list(fleet.dir.glob(".issued-certificates.yml*"))
    assert "server would be signed: private key" in output
    assert all(counts["changed"] > 0 for counts in _recap(output).values()), output

    rc, output = fleet(play)
    assert rc == 0, output
    recorded = record.read_bytes()
    rc, output = fleet(play, check=True)
    assert rc == 0, output
    assert all(counts["changed"] == 0 for counts in _recap(output).values()), output
    assert _signs(step_ca) - before == 2
    assert record.read_bytes() == recorded


def _recorded(folder: Path) -> dict[tuple[str, str], dict]:
    text = (folder / "issued-certificates.yml").read_text()
    return {(e["host"], e["item"]): e for e in yaml.safe_load(text)["issued_certificates"]}


def _spki_sha256(cert: x509.Certificate) -> str:
    der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def test_every_issued_certificate_is_recorded_by_leaders_in_parallel(fleet, step_ca):
    """h3's certificate is a client one: its own signing group, whose leader (h3) records in
    the same file as h1's (for h1 and h2), in another fork at the same time."""
    play = PLAY.format(hosts="h1:h2:h3", serial="", when="").replace(
        "- role: mtls.rollout.certificate",
        "- role: mtls.rollout.certificate\n"
        '      certificate_items: "{{ [hostvars[inventory_hostname].certificate_items[0]'
        " | combine({'profile': 'client'} if inventory_hostname == 'h3' else {})] }}\"",
    )
    rc, output = fleet(play)
    assert rc == 0, output
    recorded = _recorded(fleet.dir)
    assert set(recorded) == {(host, "server") for host in HOSTS}
    for host in HOSTS:
        leaf, entry = _leaf(fleet.dir / host), recorded[(host, "server")]
        serial = f"{leaf.serial_number:X}"
        assert entry["serial"] == (serial if len(serial) % 2 == 0 else "0" + serial)
        assert entry["public_key_sha256"] == _spki_sha256(leaf)
        assert entry["subject"] == f"CN={host}.example.test"
        assert entry["subject_alt_names"] == [f"DNS:{host}.example.test"]
        assert entry["profile"] == ("client" if host == "h3" else "server")
        assert entry["ca_url"] == step_ca.url
    # Nothing signed, nothing recorded: the file stays as it is.
    text = (fleet.dir / "issued-certificates.yml").read_bytes()
    rc, output = fleet(play)
    assert rc == 0, output
    assert (fleet.dir / "issued-certificates.yml").read_bytes() == text


def test_a_certificate_that_cannot_be_recorded_is_not_installed_on_its_host_only(fleet, step_ca):
    blocker = fleet.dir / "blocker"
    blocker.write_text("a file where h1's record folder should be\n")
    play = PLAY.format(hosts="h1:h2", serial="", when="")
    extra = {
        "certificate_issued_file": "{{ __blocked if inventory_hostname == 'h1' else __default }}",
        "__blocked": str(blocker / "issued.yml"),
        "__default": str(fleet.dir / "issued-certificates.yml"),
    }
    rc, output = fleet(play, extra)
    assert rc != 0, output
    recap = _recap(output)
    assert recap["h1"]["failed"] == 1 and recap["h2"]["failed"] == 0, output
    failure = re.search(r"fatal: \[h1\]: FAILED! =>.*?msg: (.*?)\n(?! )", output, re.S)
    message = " ".join(failure.group(1).split())
    assert "server: step-ca issued it (serial " in message, message
    assert (
        f"could not be added to the issuance record {blocker}/issued.yml"
        f" (certificate_issued_file): cannot write {blocker}/issued.yml: {blocker} is not a"
        " folder. It was not installed" in message
    ), message
    assert not (fleet.dir / "h1" / "server.crt").exists()
    assert _leaf(fleet.dir / "h2").subject.rfc4514_string() == "CN=h2.example.test"
    assert set(_recorded(fleet.dir)) == {("h2", "server")}

    # Once the record can be written, the next run signs h1 again and records it.
    before = _signs(step_ca)
    rc, output = fleet(play)
    assert rc == 0, output
    assert _signs(step_ca) - before == 1, output
    entry = _recorded(fleet.dir)[("h1", "server")]
    assert entry["public_key_sha256"] == _spki_sha256(_leaf(fleet.dir / "h1"))


# A compromised host controls what its modules report. This stand-in for its Python
# runs the real module, then forges certificate_plan's result: a CSR from the host's
# own key that adds DNS:bank.example.com, and a request that claims that name too.
FORGING_PYTHON = """\
import json, subprocess, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

done = subprocess.run([{python!r}, *sys.argv[1:]], capture_output=True, text=True)
sys.stderr.write(done.stderr)
try:
    result = json.loads(done.stdout)
except ValueError:
    sys.stdout.write(done.stdout)
    sys.exit(done.returncode)
for item in result.get("items", []):
    if "request" not in item:
        continue
    with open(item["key_path"], "rb") as handle:
        key = serialization.load_pem_private_key(handle.read(), None)
    cn = item["request"]["common_name"]
    names = [x509.DNSName(cn), x509.DNSName("bank.example.com")]
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    item["request"] = {{
        "csr": csr.public_bytes(serialization.Encoding.PEM).decode(),
        "common_name": cn,
        "subject_alt_names": [cn, "bank.example.com"],
    }}
print(json.dumps(result))
sys.exit(done.returncode)
"""


def test_a_host_that_forges_its_signing_request_gets_no_other_name(fleet, step_ca):
    forger = fleet.dir / "forging-python"
    forger.write_text(f"#!{sys.executable}\n" + FORGING_PYTHON.format(python=sys.executable))
    forger.chmod(0o755)
    play = PLAY.format(hosts="h1:h2", serial="", when="")
    before = _signs(step_ca)
    rc, output = fleet(play, extra={"ansible_python_interpreter": str(forger)})
    assert rc != 0, output
    # The token authorises only what the inventory gave: the CA is not even asked.
    assert _signs(step_ca) == before, output
    assert "bank.example.com" in output and "not authorised" in output, output
    for host in ("h1", "h2"):
        assert not (fleet.dir / host / "server.crt").exists()


# A compromised host also controls the facts it reports, and facts outrank inventory
# variables: this stand-in for its Python adds certificate_items to what setup gathers.
FACTS_PYTHON = """\
import json, subprocess, sys

done = subprocess.run([{python!r}, *sys.argv[1:]], capture_output=True, text=True)
sys.stderr.write(done.stderr)
try:
    result = json.loads(done.stdout)
except ValueError:
    sys.stdout.write(done.stdout)
    sys.exit(done.returncode)
if "ansible_facts" in result:
    result["ansible_facts"]["certificate_items"] = [
        {{"name": "server", "common_name": "bank.example.com",
          "subject_alt_names": ["DNS:bank.example.com"]}}
    ]
print(json.dumps(result))
sys.exit(done.returncode)
"""


def test_a_host_whose_facts_set_its_certificates_is_refused_and_the_others_signed(fleet, step_ca):
    forger = fleet.dir / "facts-python"
    forger.write_text(f"#!{sys.executable}\n" + FACTS_PYTHON.format(python=sys.executable))
    forger.chmod(0o755)
    inventory = json.loads((fleet.dir / "inventory.json").read_text())
    inventory["all"]["hosts"]["h1"]["ansible_python_interpreter"] = str(forger)
    (fleet.dir / "inventory.json").write_text(json.dumps(inventory))
    play = """
- name: Certificates, with facts gathered (as site.yml does)
  hosts: h1:h2
  gather_facts: true
  pre_tasks:
    - name: The play's own set_fact is not a host's fact
      ansible.builtin.set_fact:
        certificate_items:
          - name: server
            common_name: h2.example.test
            subject_alt_names: [DNS:h2.example.test, DNS:www.h2.example.test]
      when: inventory_hostname == 'h2'
  roles:
    - role: mtls.rollout.certificate
"""
    before = _signs(step_ca)
    rc, output = fleet(play)
    assert rc != 0, output
    recap = _recap(output)
    assert recap["h1"]["failed"] == 1 and recap["h2"]["failed"] == 0, output
    assert _signs(step_ca) - before == 1, output
    assert "The facts of h1 set certificate_items" in " ".join(output.split()), output
    assert not (fleet.dir / "h1").exists()
    sans = _leaf(fleet.dir / "h2").extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert sans.value.get_values_for_type(x509.DNSName) == [
        "h2.example.test",
        "www.h2.example.test",
    ]


# A compromised host sends a CSR that the controller's CSR parser cannot read: its public
# key's algorithm is an unknown OID (the CSR is otherwise made from the host's own key).
UNREADABLE_CSR_PYTHON = """\
import base64, json, subprocess, sys

done = subprocess.run([{python!r}, *sys.argv[1:]], capture_output=True, text=True)
sys.stderr.write(done.stderr)
try:
    result = json.loads(done.stdout)
except ValueError:
    sys.stdout.write(done.stdout)
    sys.exit(done.returncode)
for item in result.get("items", []):
    if "request" in item:
        pem = item["request"]["csr"]
        body = "".join(line for line in pem.splitlines() if "-----" not in line)
        der = base64.b64decode(body).replace(
            bytes.fromhex("06072a8648ce3d0201"), bytes.fromhex("06072a8648ce3d0209")
        )
        item["request"]["csr"] = (
            "-----BEGIN CERTIFICATE REQUEST-----\\n"
            + base64.encodebytes(der).decode()
            + "-----END CERTIFICATE REQUEST-----\\n"
        )
print(json.dumps(result))
sys.exit(done.returncode)
"""


def test_a_csr_the_controller_cannot_read_fails_its_host_only(fleet, step_ca):
    forger = fleet.dir / "unreadable-csr-python"
    forger.write_text(f"#!{sys.executable}\n" + UNREADABLE_CSR_PYTHON.format(python=sys.executable))
    forger.chmod(0o755)
    inventory = json.loads((fleet.dir / "inventory.json").read_text())
    inventory["all"]["hosts"]["h2"]["ansible_python_interpreter"] = str(forger)
    (fleet.dir / "inventory.json").write_text(json.dumps(inventory))
    before = _signs(step_ca)
    rc, output = fleet(PLAY.format(hosts="h1:h2:h3", serial="", when=""))
    assert rc != 0, output
    recap = _recap(output)
    assert [recap[host]["failed"] for host in HOSTS] == [0, 1, 0], output
    assert _signs(step_ca) - before == 2, output
    assert "server: step-ca did not sign it: the CSR cannot be read" in " ".join(output.split()), (
        output
    )
    for host in ("h1", "h3"):
        assert _leaf(fleet.dir / host).subject.rfc4514_string() == f"CN={host}.example.test"
    assert not (fleet.dir / "h2" / "server.crt").exists()


def _password_play(hosts: str, vars_block: str) -> str:
    return f"""
- name: Certificates
  hosts: {hosts}
  gather_facts: false
  vars:
    certificate_ca_provisioner_passwords: {{}}
{vars_block}
  roles:
    - role: mtls.rollout.certificate
"""


def test_each_signing_group_uses_its_own_hosts_password(fleet, step_ca):
    """h1 and h2 (servers) and h3 (a client certificate) each hold only the password of
    their own provisioner: every group is signed by one of its own hosts, with its own
    settings, not with the first host's."""
    vars_block = """\
    certificate_ca_provisioner_password: >-
      {{ __clients if inventory_hostname == 'h3' else __servers }}
    certificate_items: >-
      {{ [hostvars[inventory_hostname].certificate_items[0]
          | combine({'profile': 'client'} if inventory_hostname == 'h3' else {})] }}
"""
    before = _signs(step_ca)
    rc, output = fleet(
        _password_play("h1:h2:h3", vars_block),
        {"__clients": CLIENTS_PASSWORD, "__servers": SERVERS_PASSWORD},
    )
    assert rc == 0, output
    assert _signs(step_ca) - before == 3, output
    for host, usage in (("h1", "serverAuth"), ("h2", "serverAuth"), ("h3", "clientAuth")):
        eku = _leaf(fleet.dir / host).extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        assert [oid._name for oid in eku.value] == [usage]
    assert CLIENTS_PASSWORD not in output and SERVERS_PASSWORD not in output


def test_hosts_of_one_group_with_other_settings_are_signed_apart_and_fail_alone(fleet, step_ca):
    """h2 has a wrong password and h3 other workers than h1: each set of hosts with the same
    settings is signed by one of its own hosts with those settings, so h1 and h3 get their
    certificates and only h2 fails, with the reason, and no other host's name or password."""
    wrong = "a-wrong-password-of-h2"
    vars_block = """\
    certificate_ca_provisioner_password: >-
      {{ __wrong if inventory_hostname == 'h2' else __servers }}
    certificate_sign_workers: "{{ 4 if inventory_hostname == 'h3' else 8 }}"
"""
    before = _signs(step_ca)
    rc, output = fleet(
        _password_play("h1:h2:h3", vars_block), {"__servers": SERVERS_PASSWORD, "__wrong": wrong}
    )
    assert rc != 0, output
    recap = _recap(output)
    assert recap["h1"]["failed"] == 0 and recap["h3"]["failed"] == 0, output
    assert recap["h2"]["failed"] == 1, output
    assert _signs(step_ca) - before == 2, output
    for host in ("h1", "h3"):
        assert _leaf(fleet.dir / host).subject.rfc4514_string() == f"CN={host}.example.test"
    assert not (fleet.dir / "h2" / "server.crt").exists()
    assert output.count("fatal: [") == 1, output
    after = output.split("fatal: [h2]", 1)[1]
    failure = " ".join(re.search(r"msg: '((?:[^']|'')*)'", after, re.S).group(1).split())
    assert "server: step-ca did not sign it: wrong password for provisioner" in failure, output
    assert "h1" not in failure and "h3" not in failure, failure
    assert wrong not in output and SERVERS_PASSWORD not in output
    assert "hmac" not in output


def test_ca_settings_and_password_come_from_module_defaults(fleet, step_ca):
    play = """
- name: Certificates with the CA options set once for the step_ca group
  hosts: h1:h2
  gather_facts: false
  module_defaults:
    group/mtls.rollout.step_ca:
      ca_url: "{{ __url }}"
      root_fingerprint: "{{ __pinned }}"
      provisioner_password: "{{ __servers }}"
  vars:
    certificate_ca_url: ""
    certificate_ca_root_fingerprint: ""
    certificate_ca_provisioner_passwords: {}
  roles:
    - role: mtls.rollout.certificate
"""
    before = _signs(step_ca)
    extra = {
        "__url": step_ca.url,
        "__pinned": step_ca.root_fingerprint,
        "__servers": SERVERS_PASSWORD,
    }
    rc, output = fleet(play, extra)
    assert rc == 0, output
    assert _signs(step_ca) - before == 2, output
    for host in ("h1", "h2"):
        assert _leaf(fleet.dir / host).subject.rfc4514_string() == f"CN={host}.example.test"
    assert SERVERS_PASSWORD not in output

    # Defaults for another module are not the signing module's: the role says what to set.
    rc, output = fleet(
        play.replace("group/mtls.rollout.step_ca:", "mtls.rollout.step_ca_info:"), extra
    )
    assert rc != 0
    assert "Set certificate_ca_url (https://...)" in output and "module_defaults" in output


def test_a_strategy_other_than_linear_fails_clearly_and_signs_nothing(fleet, step_ca):
    play = PLAY.format(hosts="h1:h2", serial="strategy: free", when="")
    before = _requests(step_ca)
    rc, output = fleet(play)
    assert rc != 0, output
    assert all(counts["failed"] == 1 for counts in _recap(output).values()), output
    for host in ("h1", "h2"):
        assert re.search(
            rf"fatal: \[{host}\]: FAILED! =>\s+changed: false\s+msg: 'The certificate"
            r" role needs the linear strategy",
            output,
        ), output
    assert "This play uses the 'free' strategy" in output
    assert _requests(step_ca) == before
    assert not (fleet.dir / "h1").exists() and not (fleet.dir / "h2").exists()


def test_include_role_twice_in_one_play_signs_each_host_once(fleet, step_ca):
    """The first include signs h1; in the second, h1 (skipped) still has its plan from the
    first, and must not be taken for the signer of h2 and h3."""
    play = """
- name: The role included twice
  hosts: h1:h2:h3
  gather_facts: false
  tasks:
    - name: First on h1
      ansible.builtin.include_role:
        name: mtls.rollout.certificate
      when: inventory_hostname == 'h1'

    - name: Then on the others
      ansible.builtin.include_role:
        name: mtls.rollout.certificate
      when: inventory_hostname != 'h1'
"""
    before = _signs(step_ca)
    rc, output = fleet(play)
    assert rc == 0, output
    assert _signs(step_ca) - before == 3, output
    for host in HOSTS:
        assert _leaf(fleet.dir / host).subject.rfc4514_string() == f"CN={host}.example.test"


def test_a_uri_san_with_an_upper_case_scheme_is_idempotent_with_the_real_ca(fleet, step_ca):
    """step-ca writes a URI's scheme in lower case; the role asks for it that way and
    then sees the certificate as valid."""
    play = PLAY.format(hosts="h1", serial="", when="").replace(
        "roles:",
        "vars:\n"
        "    certificate_items:\n"
        "      - name: server\n"
        "        common_name: h1.example.test\n"
        "        subject_alt_names: [DNS:h1.example.test, 'URI:SPIFFE://example.test/h1']\n"
        "  roles:",
    )
    before = _signs(step_ca)
    rc, output = fleet(play)
    assert rc == 0, output
    assert _signs(step_ca) - before == 1
    names = _leaf(fleet.dir / "h1").extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert names.value.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://example.test/h1"
    ]
    rc, output = fleet(play)
    assert rc == 0, output
    assert _signs(step_ca) - before == 1, "the URI SAN was re-signed on the second run"
    assert _recap(output)["h1"]["changed"] == 0, output


# A host's Python without the cryptography library: a package of that name that fails to import.
NO_CRYPTOGRAPHY_PYTHON = """#!/bin/sh
PYTHONPATH={shadow} exec {python} "$@"
"""


def test_check_mode_on_a_host_without_cryptography_reports_instead_of_failing(fleet, step_ca):
    shadow = fleet.dir / "no-cryptography" / "cryptography"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('cryptography is not installed here')\n")
    python = fleet.dir / "python-without-cryptography"
    python.write_text(NO_CRYPTOGRAPHY_PYTHON.format(shadow=shadow.parent, python=sys.executable))
    python.chmod(0o755)
    play = PLAY.format(hosts="h1", serial="", when="").replace(
        "roles:", f"vars:\n    ansible_python_interpreter: {python}\n  roles:"
    )
    before, signs = _requests(step_ca), _signs(step_ca)
    rc, output = fleet(play, check=True)
    assert rc == 0, output
    assert _recap(output)["h1"]["changed"] >= 1, output
    assert "server would be signed: python3-cryptography is missing on the host" in " ".join(
        output.split()
    ), output
    assert not (fleet.dir / "h1").exists()
    assert _signs(step_ca) == signs
    # At most the root fetch (this test's controller cache starts empty), and no signature.
    assert _requests(step_ca) - before <= 1


HANDLERS_PLAY = """
- name: Certificates whose services are told
  hosts: h1
  gather_facts: false
  force_handlers: true
  vars:
    certificate_notify: [fleet reload]
    certificate_items:
      - name: server
        common_name: h1.example.test
        notify: [server reload]
      - name: other
        common_name: other.h1.example.test
        notify: [other reload]
        duration: "{{ __other_duration }}"
  roles:
    - role: mtls.rollout.certificate
  handlers:
    - name: Record fleet reload
      ansible.builtin.lineinfile: &record
        path: "{{ certificate_dir }}/notified"
        line: fleet
        create: true
        mode: "0644"
      listen: fleet reload
    - name: Record server reload
      ansible.builtin.lineinfile:
        <<: *record
        line: server
      listen: server reload
    - name: Record other reload
      ansible.builtin.lineinfile:
        <<: *record
        line: other
      listen: other reload
"""


def _notified(folder: Path) -> list[str]:
    path = folder / "notified"
    return path.read_text().split() if path.exists() else []


def test_handlers_are_notified_for_what_changed_also_when_another_item_fails(fleet, step_ca):
    # "other" asks for more than the provisioner's 24h: the CA refuses it, the host fails,
    # and the service of "server", which was installed, is still told.
    rc, output = fleet(HANDLERS_PLAY, {"__other_duration": "48h"})
    assert rc != 0, output
    assert "other: step-ca did not sign it: requested duration 48h" in " ".join(output.split())
    assert (fleet.dir / "h1" / "server.crt").exists()
    assert not (fleet.dir / "h1" / "other.crt").exists()
    assert sorted(_notified(fleet.dir / "h1")) == ["fleet", "server"]

    (fleet.dir / "h1" / "notified").unlink()
    rc, output = fleet(HANDLERS_PLAY, {"__other_duration": "2h"})
    assert rc == 0, output
    assert (fleet.dir / "h1" / "other.crt").exists()
    assert sorted(_notified(fleet.dir / "h1")) == ["fleet", "other"]

    (fleet.dir / "h1" / "notified").unlink()
    rc, output = fleet(HANDLERS_PLAY, {"__other_duration": "2h"})
    assert rc == 0, output
    assert _notified(fleet.dir / "h1") == []
    assert _recap(output)["h1"]["changed"] == 0, output


# A compromised host claims, in certificate_install's result, to have changed a
# certificate that was not even signed for it this run.
CLAIMING_PYTHON = """\
import json, subprocess, sys

done = subprocess.run([{python!r}, *sys.argv[1:]], capture_output=True, text=True)
sys.stderr.write(done.stderr)
try:
    result = json.loads(done.stdout)
except ValueError:
    sys.stdout.write(done.stdout)
    sys.exit(done.returncode)
if "changed_items" in result:
    result["changed_items"].append("other")
print(json.dumps(result))
sys.exit(done.returncode)
"""


def test_a_host_claiming_an_unsigned_certificate_changed_is_not_believed(fleet, step_ca):
    rc, output = fleet(HANDLERS_PLAY, {"__other_duration": "2h"})
    assert rc == 0, output
    (fleet.dir / "h1" / "notified").unlink()
    (fleet.dir / "h1" / "server.crt").unlink()
    claimer = fleet.dir / "claiming-python"
    claimer.write_text(f"#!{sys.executable}\n" + CLAIMING_PYTHON.format(python=sys.executable))
    claimer.chmod(0o755)
    rc, output = fleet(
        HANDLERS_PLAY, {"__other_duration": "2h", "ansible_python_interpreter": str(claimer)}
    )
    assert rc == 0, output
    assert "changed_items: - server msg:" in " ".join(output.split()), output
    assert sorted(_notified(fleet.dir / "h1")) == ["fleet", "server"]


def test_import_role_signs_and_then_ends_early(fleet, step_ca):
    play = """
- name: The role imported
  hosts: h1:h2
  gather_facts: false
  tasks:
    - name: Certificates
      ansible.builtin.import_role:
        name: mtls.rollout.certificate
"""
    before = _signs(step_ca)
    rc, output = fleet(play)
    assert rc == 0, output
    assert _signs(step_ca) - before == 2, output
    requests = _requests(step_ca)
    rc, output = fleet(play)
    assert rc == 0, output
    assert _requests(step_ca) == requests
    assert "Sign the batch's CSRs" not in output  # the role ended after its plan
