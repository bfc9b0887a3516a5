# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The people, revoke and report playbooks over pseudo-hosts (``ansible_connection: local``,
one folder each) against the real step-ca on loopback.

NGINX is not here (molecule/lifecycle proves that it denies what these playbooks revoke):
the inventory has clients only, and the revocation list's path is set for all hosts.

- people.yml issues each person a client certificate on the people host only, and a
  PKCS#12 bundle that opens with the passphrase; a second run changes nothing;
- revoke.yml revokes by host and item, by serial and by person; the CA refuses to renew
  a revoked certificate; the list holds each serial once, in NGINX's form; a second run
  changes nothing; check mode revokes and writes nothing; an unknown host, item or
  serial, an ambiguous serial, --limit and an unreachable CA fail with what went wrong
  and leave the list as it was;
- by host and item it does not trust the host: a host that shows another host's
  certificate gets its own (from the issuance record) revoked, not the other's, and the
  run fails naming it; an unreachable host is revoked from the record alone;
- report.yml lists every certificate sorted by expiry with its serial and days left, and
  writes a textfile that Prometheus' own parser reads, changed only when it changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import CLIENTS_PASSWORD, REPO, SERVERS_PASSWORD, free_port
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

PASSPHRASE = "unit-test-bundle-passphrase"
PEOPLE = [
    {"name": "Ann Example", "email": "ann@example.test", "passphrase": PASSPHRASE},
    {"name": "Zoë Müller", "email": "zoe@example.test", "passphrase": PASSPHRASE, "key_type": "ec"},
]


def _recap(output: str) -> dict[str, dict[str, int]]:
    recap = {}
    for line in output.rsplit("PLAY RECAP", 1)[1].splitlines():
        match = re.match(r"^(\S+)\s*:\s*(ok=.*)$", line.strip())
        if match:
            recap[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
    return recap


def _flat(output: str) -> str:
    """The output with every run of blanks as one space: the YAML callback wraps messages."""
    return re.sub(r"\s+", " ", output)


def _changed(output: str) -> dict[str, int]:
    return {host: counts["changed"] for host, counts in _recap(output).items()}


@pytest.fixture(scope="module")
def lifecycle(step_ca, tmp_path_factory):
    """An inventory of clients c1 and c2 (c2 is the people host) and a playbook runner.

    ``run(playbook, extra=None, check=False) -> (rc, output)``; ``run.dir`` is the folder
    of the inventory, the hosts' folders and the revocation list.
    """
    ansible_playbook = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent))
    if ansible_playbook is None:
        pytest.skip("ansible-playbook is not installed next to this Python")
    base = tmp_path_factory.mktemp("lifecycle")
    for host in ("c1", "c2"):
        (base / host / "textfile").mkdir(parents=True)
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                # Root runs the tests, and there is no sudo to become root again.
                "ansible_become": False,
                "certificate_ca_url": step_ca.url,
                # As the demo takes it from the CA host: a value that reads another host's
                # variables, which hostvars[...] cannot render from a third host.
                "certificate_ca_root_fingerprint": "{{ hostvars['c1'].test_root_fingerprint }}",
                "certificate_ca_provisioner_passwords": {
                    "clients": CLIENTS_PASSWORD,
                    "servers": SERVERS_PASSWORD,
                },
                "nginx_mtls_revocation_file": str(base / "revoked-certificates.yml"),
                "mtls_people_host": "c2",
                "mtls_people_dir": str(base / "c2" / "people"),
                "mtls_people": PEOPLE,
            },
            "children": {
                "mtls_clients": {
                    "hosts": {
                        host: {
                            "certificate_dir": str(base / host),
                            "report_textfile_dir": str(base / host / "textfile"),
                            "test_root_fingerprint": step_ca.root_fingerprint,
                            "certificate_items": [
                                {
                                    "name": "worker",
                                    "common_name": f"worker.{host}.example.test",
                                    "profile": "client",
                                    "duration": duration,
                                },
                                {
                                    "name": "spare",
                                    "common_name": f"spare.{host}.example.test",
                                    "profile": "client",
                                },
                                {
                                    "name": "badge",
                                    "common_name": f"badge.{host}.example.test",
                                    "profile": "client",
                                },
                            ],
                        }
                        for host, duration in (("c1", "3h"), ("c2", "5h"))
                    }
                }
            },
        }
    }
    (base / "inventory.json").write_text(json.dumps(inventory))

    def run(
        playbook: str, extra: dict | None = None, check: bool = False, limit: str | None = None
    ) -> tuple[int, str]:
        (base / "extra.json").write_text(json.dumps(extra or {}))
        env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0")
        env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO / "build" / "collections")
        proc = subprocess.run(
            [
                ansible_playbook,
                "-i",
                str(base / "inventory.json"),
                "-e",
                f"@{base / 'extra.json'}",
                f"mtls.rollout.{playbook}",
                *(["--check", "--diff"] if check else []),
                *(["--limit", limit] if limit else []),
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        # The last run's whole output, for whoever debugs a failure.
        (base / "last-run.log").write_text(proc.stdout + proc.stderr)
        return proc.returncode, proc.stdout + proc.stderr

    run.dir = base
    # The hosts' certificates, issued once for the module: the certificate role, then people.
    (base / "issue.yml").write_text(
        "- name: Certificates\n  hosts: mtls_clients\n  gather_facts: false\n"
        "  roles: [mtls.rollout.certificate]\n"
        "- name: People\n  ansible.builtin.import_playbook: mtls.rollout.people\n"
    )
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0")
    env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO / "build" / "collections")
    proc = subprocess.run(
        [ansible_playbook, "-i", str(base / "inventory.json"), str(base / "issue.yml")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run.issue_output = proc.stdout + proc.stderr
    run.issue_playbook = str(base / "issue.yml")
    run.ansible_playbook = ansible_playbook
    run.env = env
    return run


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _serial(path: Path) -> str:
    number = _cert(path).serial_number
    text = f"{number:X}"
    return text if len(text) % 2 == 0 else "0" + text


def _listed(run) -> list[dict]:
    path = run.dir / "revoked-certificates.yml"
    if not path.exists():
        return []
    return yaml.safe_load(path.read_text())["revoked_certificates"]


def _renew_status(step_ca, cert: Path, key: Path) -> int:
    """HTTP status of POST /1.0/renew with ``cert`` and ``key`` as the TLS client certificate."""
    context = ssl.create_default_context(cafile=step_ca.root_path)
    context.load_cert_chain(str(cert), str(key))
    request = urllib.request.Request(f"{step_ca.url}/1.0/renew", data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


# --------------------------------------------------------------------------- people


def test_people_are_issued_on_the_people_host_only_with_bundles(lifecycle):
    people = lifecycle.dir / "c2" / "people"
    ann = _cert(people / "ann-example.crt")
    assert ann.subject.rfc4514_string() == "CN=Ann Example"
    sans = ann.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.RFC822Name) == ["ann@example.test"]
    eku = ann.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    assert ann.public_key().key_size == 2048
    zoe = _cert(people / "zoe-muller.crt")
    assert zoe.subject.rfc4514_string() == "CN=Zoë Müller"
    assert not (lifecycle.dir / "c1" / "people").exists()
    for stem in ("ann-example", "zoe-muller"):
        assert (people / f"{stem}.key").stat().st_mode & 0o777 == 0o600
        bundle = people / f"{stem}.p12"
        assert bundle.stat().st_mode & 0o777 == 0o600
        key, cert, chain = pkcs12.load_key_and_certificates(
            bundle.read_bytes(), PASSPHRASE.encode()
        )
        assert cert == _cert(people / f"{stem}.crt")
        assert key is not None
        assert len(chain) == 1  # the intermediate
        with pytest.raises(ValueError):
            pkcs12.load_key_and_certificates(bundle.read_bytes(), b"not the passphrase")
    bundle = f"Zoë Müller: bundle {people}/zoe-muller.p12 written ({people}/zoe-muller.p12 does"
    assert bundle in _flat(lifecycle.issue_output)


def test_people_second_run_changes_nothing(lifecycle):
    rc, output = lifecycle("people")
    assert rc == 0, output
    assert set(_changed(output).values()) == {0}, output
    said = f"Ann Example: bundle {lifecycle.dir}/c2/people/ann-example.p12 up to date"
    assert said in _flat(output)


def test_people_without_passphrase_or_host_fail_clearly(lifecycle):
    nameless = [{"name": "No Pass", "email": "no@example.test"}]
    rc, output = lifecycle("people", {"mtls_people": nameless})
    assert rc != 0
    assert "without a passphrase: No Pass" in _flat(output)
    rc, output = lifecycle("people", {"mtls_people_host": "nowhere"})
    assert rc != 0
    assert 'mtls_people_host "nowhere" is not a host of mtls_servers' in _flat(output)


# --------------------------------------------------------------------------- revoke


def test_revoke_check_mode_revokes_and_writes_nothing(lifecycle, step_ca):
    c1 = lifecycle.dir / "c1"
    rc, output = lifecycle("revoke", {"revoke_host": "c1", "revoke_item": "spare"}, check=True)
    assert rc == 0, output
    serial = _serial(c1 / "spare.crt")
    said = f"{serial} (CN=spare.c1.example.test, c1 spare): would be revoked at step-ca"
    assert said in _flat(output)
    assert f'+  - serial: "{serial}"' in output  # the list's diff
    assert _changed(output)["localhost"] > 0
    assert not (lifecycle.dir / "revoked-certificates.yml").exists()
    assert _renew_status(step_ca, c1 / "spare.crt", c1 / "spare.key") == 201


def test_revoke_by_host_and_item_then_again_changes_nothing(lifecycle, step_ca):
    c1 = lifecycle.dir / "c1"
    serial = _serial(c1 / "spare.crt")
    rc, output = lifecycle(
        "revoke",
        {
            "revoke_host": "c1",
            "revoke_item": "spare",
            "revoke_reason": "left with a laptop",
            "revoke_reason_code": "keyCompromise",
        },
    )
    assert rc == 0, output
    assert f"{serial} (CN=spare.c1.example.test, c1 spare): revoked at step-ca" in _flat(output)
    [entry] = [e for e in _listed(lifecycle) if e["serial"] == serial]
    assert entry["subject"] == "CN=spare.c1.example.test"
    assert entry["reason"] == "left with a laptop"
    assert entry["reason_code"] == 1
    assert (entry["host"], entry["item"]) == ("c1", "spare")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", entry["revoked_at"])
    assert entry["not_after"] == _cert(c1 / "spare.crt").not_valid_after_utc.strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    # Passive revocation: step-ca refuses to renew it, and still renews the others.
    assert _renew_status(step_ca, c1 / "spare.crt", c1 / "spare.key") == 401
    assert _renew_status(step_ca, c1 / "worker.crt", c1 / "worker.key") == 201

    before = (lifecycle.dir / "revoked-certificates.yml").read_bytes()
    rc, output = lifecycle("revoke", {"revoke_host": "c1", "revoke_item": "spare"})
    assert rc == 0, output
    assert set(_changed(output).values()) == {0}, output
    assert "already revoked at step-ca" in _flat(output)
    assert (lifecycle.dir / "revoked-certificates.yml").read_bytes() == before

    # Check mode after the fact: nothing to do, and it says so.
    rc, output = lifecycle("revoke", {"revoke_host": "c1", "revoke_item": "spare"}, check=True)
    assert rc == 0, output
    assert set(_changed(output).values()) == {0}, output
    assert "already on the revocation list" in _flat(output)


def test_revoke_by_serial_in_any_form_and_by_person(lifecycle, step_ca):
    c2 = lifecycle.dir / "c2"
    spare = _cert(c2 / "spare.crt").serial_number
    people = c2 / "people"
    rc, output = lifecycle(
        "revoke",
        # The same serial twice (decimal integer and NGINX's hex), and a person by email.
        {"revoke_serials": [spare, f"0x{spare:x}"], "revoke_person": "ann@example.test"},
    )
    assert rc == 0, output
    listed = {e["serial"]: e for e in _listed(lifecycle)}
    assert _serial(c2 / "spare.crt") in listed
    ann = listed[_serial(people / "ann-example.crt")]
    assert (ann["host"], ann["item"], ann["subject"]) == ("c2", "ann-example", "CN=Ann Example")
    assert len(listed) == len(_listed(lifecycle))  # each serial once
    assert _renew_status(step_ca, people / "ann-example.crt", people / "ann-example.key") == 401


def _issued(run) -> list[dict]:
    return yaml.safe_load((run.dir / "issued-certificates.yml").read_text())["issued_certificates"]


def test_the_certificate_role_recorded_every_certificate_it_issued(lifecycle):
    by_item = {(e["host"], e["item"]): e for e in _issued(lifecycle)}
    people = lifecycle.dir / "c2" / "people"
    files = {
        (host, name): lifecycle.dir / host / f"{name}.crt"
        for host in ("c1", "c2")
        for name in ("worker", "spare", "badge")
    }
    files[("c2", "ann-example")] = people / "ann-example.crt"
    files[("c2", "zoe-muller")] = people / "zoe-muller.crt"
    assert set(by_item) == set(files)
    for (host, name), path in files.items():
        cert = _cert(path)
        entry = by_item[(host, name)]
        assert entry["serial"] == _serial(path)
        assert entry["subject"] == cert.subject.rfc4514_string()
        assert entry["profile"] == "client"
        assert entry["not_after"] == cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
        spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert entry["public_key_sha256"] == hashlib.sha256(spki).hexdigest()
    assert by_item[("c2", "ann-example")]["subject_alt_names"] == ["email:ann@example.test"]
    assert "PRIVATE KEY" not in (lifecycle.dir / "issued-certificates.yml").read_text()


def test_revoke_by_host_does_not_trust_a_forged_report(lifecycle, step_ca):
    """c1 shows c2's worker certificate (public: it could have seen it in a handshake) as
    its badge: c1's own badge is revoked, from the record; c2's worker is not."""
    c1, c2 = lifecycle.dir / "c1", lifecycle.dir / "c2"
    own = (c1 / "badge.crt").read_bytes()
    own_serial, victim_serial = _serial(c1 / "badge.crt"), _serial(c2 / "worker.crt")
    (c1 / "badge.crt").write_bytes((c2 / "worker.crt").read_bytes())
    try:
        rc, output = lifecycle("revoke", {"revoke_host": "c1", "revoke_item": "badge"})
    finally:
        (c1 / "badge.crt").write_bytes(own)
    assert rc != 0, output
    flat = _flat(output)
    said = (
        f"item badge of c1: the certificate c1 reports (serial {victim_serial},"
        " CN=worker.c2.example.test) was not revoked: its subject is 'CN=worker.c2.example.test',"
        " wanted CN=badge.c1.example.test"
    )
    assert said in flat, output
    assert f"{own_serial} (CN=badge.c1.example.test, c1 badge, from the issuance record):" in flat
    listed = {e["serial"]: e for e in _listed(lifecycle)}
    assert (listed[own_serial]["host"], listed[own_serial]["item"]) == ("c1", "badge")
    assert victim_serial not in listed
    assert _renew_status(step_ca, c1 / "badge.crt", c1 / "badge.key") == 401
    assert _renew_status(step_ca, c2 / "worker.crt", c2 / "worker.key") == 201


def test_revoke_by_host_of_an_unreachable_host_uses_the_record(lifecycle, step_ca):
    c2 = lifecycle.dir / "c2"
    serial = _serial(c2 / "badge.crt")
    # c2 is reached over SSH at a name that does not resolve: a lost laptop.
    lost = {
        "ansible_connection": "{{ 'ssh' if inventory_hostname == 'c2' else 'local' }}",
        "ansible_host": "{{ 'c2.invalid' if inventory_hostname == 'c2' else 'localhost' }}",
    }
    rc, output = lifecycle("revoke", {"revoke_host": "c2", "revoke_item": "badge", **lost})
    assert rc == 0, output
    flat = _flat(output)
    warning = (
        "WARNING: item badge of c2: c2 did not answer, so its current certificate could not be"
        f" checked; revoking what the issuance record holds for it ({serial})."
    )
    assert warning in flat, output
    assert f"{serial} (CN=badge.c2.example.test, c2 badge, from the issuance record):" in flat
    assert serial in {e["serial"] for e in _listed(lifecycle)}
    assert _renew_status(step_ca, c2 / "badge.crt", c2 / "badge.key") == 401


# One case per place a run can stop; every other message is unit-tested with its filter
# (tests/unit/plugins/test_lifecycle_filters.py).
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"revoke_host": "c9", "revoke_item": "worker"}, 'revoke_host "c9" is not a host of'),
        (
            {"revoke_host": "c1", "revoke_item": "nope"},
            "c1 has no certificate item 'nope' (its items: worker, spare, badge)",
        ),
        ({"revoke_serials": ["0x0DEAD0BEEF"]}, "serial 0DEAD0BEEF is not the serial of any"),
    ],
)
def test_revoke_refuses_what_it_cannot_find_and_changes_nothing(lifecycle, extra, message):
    path = lifecycle.dir / "revoked-certificates.yml"
    before = path.read_bytes() if path.exists() else None
    rc, output = lifecycle("revoke", extra)
    assert rc != 0, output
    assert message in _flat(output), output
    assert (path.read_bytes() if path.exists() else None) == before


def test_revoke_refuses_a_limit(lifecycle):
    path = lifecycle.dir / "revoked-certificates.yml"
    before = path.read_bytes() if path.exists() else None
    rc, output = lifecycle("revoke", {"revoke_host": "c1", "revoke_item": "worker"}, limit="c1")
    assert rc != 0
    assert "Run mtls.rollout.revoke without --limit (c1)" in _flat(output)
    assert (path.read_bytes() if path.exists() else None) == before


def test_revoke_with_the_ca_unreachable_fails_and_lists_nothing(lifecycle, step_ca):
    c1 = lifecycle.dir / "c1"
    path = lifecycle.dir / "revoked-certificates.yml"
    before = path.read_bytes() if path.exists() else None
    closed = f"https://127.0.0.1:{free_port()}"
    rc, output = lifecycle(
        "revoke",
        {"revoke_host": "c1", "revoke_item": "worker", "certificate_ca_url": closed},
    )
    assert rc != 0, output
    said = f"{_serial(c1 / 'worker.crt')} (CN=worker.c1.example.test, c1 worker): NOT REVOKED"
    assert said in _flat(output)
    assert "Not revoked (nothing was added to the list for them)" in _flat(output)
    assert re.search(r"(?i)(unreachable|refused|connect)", output)
    assert CLIENTS_PASSWORD not in _flat(output)
    assert (path.read_bytes() if path.exists() else None) == before
    assert _renew_status(step_ca, c1 / "worker.crt", c1 / "worker.key") == 201


def test_revoke_a_serial_no_host_holds_only_when_allowed(lifecycle):
    rc, output = lifecycle(
        "revoke", {"revoke_serials": ["0x0DEAD0BEEF"], "revoke_unknown_serials": True}
    )
    assert rc == 0, output
    assert "0DEAD0BEEF (unknown subject, held by no host): revoked at step-ca" in _flat(output)
    assert "0DEAD0BEEF" in {e["serial"] for e in _listed(lifecycle)}


def test_an_ambiguous_serial_is_taken_only_when_the_fleet_settles_it(lifecycle):
    c1 = lifecycle.dir / "c1"
    number = _cert(c1 / "worker.crt").serial_number
    rc, output = lifecycle("revoke", {"revoke_serials": ["1234"]})
    assert rc != 0
    assert "serial '1234' could be decimal or hex" in _flat(output)
    # Its decimal digits, quoted: only the decimal reading is a serial of the fleet.
    rc, output = lifecycle("revoke", {"revoke_serials": [str(number)]}, check=True)
    assert rc == 0, output
    assert f"{_serial(c1 / 'worker.crt')} (CN=worker.c1.example.test, c1 worker)" in _flat(output)


# --------------------------------------------------------------------------- report


def _report_rows(output: str) -> list[list[str]]:
    # The YAML callback prints the msg list as "- line" (quoted when it must be).
    lines = [re.sub(r"^- ", "", line.strip()).strip("\"'") for line in output.splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith("EXPIRES (UTC)"))
    rows = []
    for line in lines[start + 1 :]:
        if not re.match(r"^(\d{4}-|-  )", line):
            break
        rows.append(re.split(r"\s{2,}", line))
    return rows


def test_report_lists_every_certificate_by_expiry_and_writes_a_textfile(lifecycle):
    from prometheus_client.parser import text_string_to_metric_families

    rc, output = lifecycle("report", {"report_textfile": True})
    assert rc == 0, output
    assert "EXPIRES (UTC)" in output, output
    rows = _report_rows(output)
    # Every certificate of the fleet: three items per host, two people on c2.
    expected = {
        ("c1", "worker"): lifecycle.dir / "c1" / "worker.crt",
        ("c1", "spare"): lifecycle.dir / "c1" / "spare.crt",
        ("c1", "badge"): lifecycle.dir / "c1" / "badge.crt",
        ("c2", "worker"): lifecycle.dir / "c2" / "worker.crt",
        ("c2", "spare"): lifecycle.dir / "c2" / "spare.crt",
        ("c2", "badge"): lifecycle.dir / "c2" / "badge.crt",
        ("c2", "ann-example"): lifecycle.dir / "c2" / "people" / "ann-example.crt",
        ("c2", "zoe-muller"): lifecycle.dir / "c2" / "people" / "zoe-muller.crt",
    }
    assert {(row[3], row[4]) for row in rows} == set(expected), output
    listed = {entry["serial"] for entry in _listed(lifecycle)}
    not_afters = []
    for expires, days, status, host, name, _cn, serial in rows:
        cert = _cert(expected[(host, name)])
        assert serial == _serial(expected[(host, name)])
        assert expires == cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M")
        assert int(days) == 0  # hours-long certificates of the test CA
        not_afters.append(cert.not_valid_after_utc)
        assert status in {"OK", "REVOKED"}
    assert not_afters == sorted(not_afters)
    assert rows[-1][3:5] == ["c2", "worker"]  # 5h, the last to expire

    for host in ("c1", "c2"):
        text = (lifecycle.dir / host / "textfile" / "mtls_certificates.prom").read_text()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        not_after = {
            s.labels["name"]: s.value
            for s in families["mtls_certificate_not_after_seconds"].samples
            if s.labels["host"] == host
        }
        mine = {name: path for (where, name), path in expected.items() if where == host}
        assert set(not_after) == set(mine)
        for name, path in mine.items():
            assert not_after[name] == _cert(path).not_valid_after_utc.timestamp()
        revoked = {s.labels["name"]: s.value for s in families["mtls_certificate_revoked"].samples}
        present = {s.labels["name"]: s.value for s in families["mtls_certificate_present"].samples}
        assert set(present.values()) == {1.0}
        info = {s.labels["name"]: s.labels for s in families["mtls_certificate_info"].samples}
        for name, path in mine.items():
            assert info[name]["serial"] == _serial(path)
            assert info[name]["common_name"] == _cert(path).subject.rfc4514_string()[3:]
            assert revoked[name] == (1.0 if _serial(path) in listed else 0.0)

    rc, output = lifecycle("report", {"report_textfile": True})
    assert rc == 0, output
    assert set(_changed(output).values()) == {0}, output


def test_report_with_a_failing_host_reports_the_others(lifecycle):
    """c1's textfile folder is gone: c1 fails with the reason, c2 is reported."""
    folder = lifecycle.dir / "c1" / "textfile"
    moved = lifecycle.dir / "c1" / "textfile.away"
    folder.rename(moved)
    try:
        rc, output = lifecycle("report", {"report_textfile": True})
    finally:
        moved.rename(folder)
    assert rc != 0
    flat = _flat(output)
    assert f"cannot write {folder}/mtls_certificates.prom: folder {folder} does not exist" in flat
    hosts = {row[3] for row in _report_rows(output)}
    assert hosts == {"c2"}
    assert "Not reported (unreachable, failed, or without certificates): c1" in flat
