# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nginx_mtls role's checks of nginx_mtls_sites (tasks/validate.yml) and the files its
reload record watches (vars/main.yml), run by ansible-playbook on localhost; no NGINX."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

# Each case: include the role's validate.yml with the case's settings, then keep the
# first failure's message, or the role's own variables as the rest of the role sees them.
CASE = """\
- name: Settings of case {{ case.name }}
  ansible.builtin.set_fact:
    nginx_mtls_sites: "{{ case.sites }}"
    nginx_mtls_check_served_certificates: "{{ case.check | default(true) }}"

- name: Case {{ case.name }}
  block:
    - name: Check the sites
      ansible.builtin.include_role:
        name: mtls.rollout.nginx_mtls
        tasks_from: validate
        public: true

    - name: Keep what the role would watch
      ansible.builtin.set_fact:
        results: >-
          {{ results | combine({case.name: {'files': __nginx_mtls_loaded_files,
                                            'sni': __nginx_mtls_served_sni | default(none)}}) }}
  rescue:
    - name: Keep the message of the check that failed
      ansible.builtin.set_fact:
        results: >-
          {{ results | combine({case.name: {'failed': ansible_failed_result.results
             | default([ansible_failed_result]) | selectattr('failed', 'defined')
             | selectattr('failed') | map(attribute='msg') | first
             | regex_replace('\\\\s+', ' ')}}) }}
"""

PLAY = """\
- name: The nginx_mtls role's site checks
  hosts: localhost
  gather_facts: false
  vars:
    results: {}
  tasks:
    - name: Each case
      ansible.builtin.include_tasks: case.yml
      loop: "{{ cases }}"
      loop_control:
        loop_var: case
        label: "{{ case.name }}"

    - name: Save the results
      ansible.builtin.copy:
        content: "{{ results | to_json }}"
        dest: "{{ out }}"
        mode: "0644"
"""

CONFIG = "/etc/nginx/conf.d/nginx_mtls.conf"
DEFAULT_SITE = "/etc/nginx/sites-enabled/default"


def site(name: str, **extra) -> dict:
    return {
        "name": name,
        "server_name": f"{name}.example.com",
        "certificate": f"/etc/ssl/mtls/{name}.crt",
        "certificate_key": f"/etc/ssl/mtls/{name}.key",
        "client_ca": "/etc/ssl/mtls/ca-bundle.pem",
        **extra,
    }


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    """Run every case in one ansible-playbook; the result of each, by case name."""
    ansible_playbook = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent))
    if ansible_playbook is None:
        pytest.skip("ansible-playbook is not installed next to this Python")
    work = tmp_path_factory.mktemp("nginx_mtls_sites")
    (work / "play.yml").write_text(PLAY)
    (work / "case.yml").write_text(CASE)
    extra = {
        "cases": [{"name": name, **case} for name, case in CASES.items()],
        "out": str(work / "out.json"),
        "ansible_python_interpreter": sys.executable,
    }
    (work / "extra.json").write_text(json.dumps(extra))
    proc = subprocess.run(
        [
            ansible_playbook,
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"@{work / 'extra.json'}",
            str(work / "play.yml"),
        ],
        cwd=REPO,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((work / "out.json").read_text())


CASES: dict[str, dict] = {
    "absolute": {"sites": [site("app", crl="/etc/ssl/mtls/crl.pem"), site("empty_crl", crl="")]},
    **{
        f"relative_{key}": {"sites": [site("app", **{key: value})]}
        for key, value in [
            ("certificate", "ssl/app.crt"),
            ("certificate_key", "app.key"),
            ("client_ca", "./ca-bundle.pem"),
            ("crl", "crl.pem"),
        ]
    },
    "missing_certificate": {
        "sites": [{k: v for k, v in site("app").items() if k != "certificate"}]
    },
    "served_check_on": {
        "sites": [
            site("app"),
            site("wildcard", server_name=["*.example.org"]),
            site("dot", server_name=".example.net"),
            site("tail", server_name="www.example.*"),
            site("regex", server_name="~^r[0-9]+$", listen=8443),
            site("regexes", server_name=["~^a$", "~^b$"], listen=9443),
            site("mixed", server_name=["~^m$", "m.example.com"]),
        ],
    },
    "served_check_off": {
        "check": False,
        "sites": [site("app", crl="/etc/ssl/mtls/crl.pem"), site("other", listen=8443)],
    },
}


def test_absolute_paths_pass(results):
    assert "failed" not in results["absolute"], results["absolute"]


@pytest.mark.parametrize(
    ("case", "named"),
    [
        ("relative_certificate", "ssl/app.crt"),
        ("relative_certificate_key", "app.key"),
        ("relative_client_ca", "./ca-bundle.pem"),
        ("relative_crl", "crl.pem"),
    ],
)
def test_a_relative_path_is_refused_by_name(results, case, named):
    message = results[case]["failed"]
    assert message.startswith("nginx_mtls_sites entry app is invalid:"), message
    assert (
        "certificate, certificate_key and client_ca as absolute paths, crl too when set" in message
    )
    assert "NGINX reads a relative path from its prefix, such as /etc/nginx" in message
    assert f"not absolute: {named};" in message


def test_a_missing_certificate_is_still_refused(results):
    message = results["missing_certificate"]["failed"]
    assert message.startswith("nginx_mtls_sites entry app is invalid:"), message
    assert "not absolute: none;" in message


def test_without_the_served_check_the_record_watches_certificates_never_keys(results):
    # The record is 0644 and the module returns its digests: no digest of a private key.
    assert results["served_check_off"]["files"] == [
        CONFIG,
        "/etc/ssl/mtls/ca-bundle.pem",
        "/etc/ssl/mtls/crl.pem",
        DEFAULT_SITE,
        "/etc/ssl/mtls/app.crt",
        "/etc/ssl/mtls/other.crt",
    ]


def test_the_served_check_asks_each_site_for_a_name_a_client_could_send(results):
    assert results["served_check_on"]["sni"] == {
        "app": "app.example.com",
        "wildcard": "nginx-mtls-check.example.org",
        "dot": "example.net",
        "tail": "www.example.nginx-mtls-check",
        # Only regular expressions: nothing to ask for, so the check skips the site.
        "regex": "",
        "regexes": "",
        "mixed": "m.example.com",
    }


def test_the_record_watches_the_certificates_the_served_check_skips(results):
    # A certificate renewed by a run that died before its reload is made up for either
    # way: over a handshake where the check asks the site, by the record where it cannot.
    assert results["served_check_on"]["files"] == [
        CONFIG,
        "/etc/ssl/mtls/ca-bundle.pem",
        DEFAULT_SITE,
        "/etc/ssl/mtls/regex.crt",
        "/etc/ssl/mtls/regexes.crt",
    ]
