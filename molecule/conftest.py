"""Fixtures shared by the Molecule scenarios' testinfra tests.

Tests reach containers through testinfra's docker:// backend (the docker CLI,
or podman's through DOCKER_HOST); it is much faster than going through Ansible.
"""

from __future__ import annotations

import json
import shlex

import pytest
import testinfra


@pytest.fixture(scope="session")
def container():
    """Return a function that gives the testinfra host of a container by name."""
    hosts: dict[str, testinfra.host.Host] = {}

    def get(name: str) -> testinfra.host.Host:
        if name not in hosts:
            hosts[name] = testinfra.get_host(f"docker://{name}")
        return hosts[name]

    return get


def curl_status(host, url: str, *args: str) -> str:
    """HTTP status of a request made with curl on ``host``, or curl's error."""
    command = ["curl", "--silent", "--show-error", "--output", "/dev/null"]
    command += ["--write-out", "%{http_code}", *args, url]
    result = host.run(shlex.join(command))
    if result.rc != 0:
        return f"curl exit {result.rc}: {result.stderr.strip()}"
    return result.stdout.strip()


def openssl_text(host, path: str) -> str:
    """``openssl x509 -text`` of a certificate file on ``host``."""
    return host.check_output(f"openssl x509 -in {shlex.quote(path)} -noout -text")


def json_of(host, command: str):
    """Run ``command`` on ``host`` and parse its output as JSON."""
    return json.loads(host.check_output(command))
