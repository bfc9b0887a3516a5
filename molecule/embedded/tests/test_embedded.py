"""The collection inside a user's own site, installed from its tarball.

The site's application (echo_app, on the app host's loopback) answers with the
headers it received; NGINX from mtls.rollout.nginx_mtls fronts it and only the
worker's certificate (CN=billing-worker) is allowed in.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest
from conftest import curl_status

CERT_DIR = "/etc/ssl/mtls"
BUNDLE = f"{CERT_DIR}/ca-bundle.pem"
APP = "https://app/"
WORKER_CERT = [
    "--cert",
    f"{CERT_DIR}/billing-worker.crt",
    "--key",
    f"{CERT_DIR}/billing-worker.key",
]


@pytest.fixture
def app(container):
    return container("embedded-app")


@pytest.fixture
def worker(container):
    return container("embedded-worker")


def echoed(host, *args: str, url: str = APP) -> dict:
    """What the application received for a request made with curl on ``host``."""
    command = ["curl", "--silent", "--show-error", "--fail", "--cacert", BUNDLE, *args, url]
    return json.loads(host.check_output(shlex.join(command)))


def test_the_application_receives_the_verified_identity(worker):
    x509 = f"openssl x509 -in {CERT_DIR}/billing-worker.crt -noout"
    serial = worker.check_output(f"{x509} -serial").split("=", 1)[1].strip()
    issuer = worker.check_output(f"{x509} -issuer -nameopt RFC2253").split("=", 1)[1].strip()
    headers = echoed(worker, *WORKER_CERT)["headers"]
    assert headers["x-ssl-client-verify"] == ["SUCCESS"]
    assert headers["x-ssl-client-subject"] == ["CN=billing-worker"]
    assert headers["x-ssl-client-serial"] == [serial.upper()]
    assert headers["x-ssl-client-issuer"] == [issuer]
    assert "Intermediate CA" in issuer


def test_a_spoofed_identity_does_not_reach_the_application(worker):
    spoofed = {
        "X-SSL-Client-Subject": "CN=admin",
        "X-SSL-Client-Verify": "SUCCESS",
        "X-SSL-Client-Serial": "01",
        "X-Forwarded-For": "10.0.0.1",
    }
    args = [arg for name, value in spoofed.items() for arg in ("--header", f"{name}: {value}")]
    headers = echoed(worker, *WORKER_CERT, *args)["headers"]
    assert headers["x-ssl-client-subject"] == ["CN=billing-worker"]
    assert headers["x-ssl-client-verify"] == ["SUCCESS"]
    assert headers["x-ssl-client-serial"] != ["01"]
    assert len(headers["x-ssl-client-serial"]) == 1
    assert "10.0.0.1" not in ",".join(headers.get("x-forwarded-for", []))


def test_without_a_client_certificate_nginx_refuses(worker):
    # A claimed identity without a certificate gets NGINX's 400, not the application.
    assert (
        curl_status(
            worker, APP, "--cacert", BUNDLE, "--header", "X-SSL-Client-Subject: CN=billing-worker"
        )
        == "400"
    )


def test_the_servers_own_certificate_is_no_client_identity(app):
    # Same CA, but a serverAuth-only certificate: refused as a client certificate.
    own = ["--cert", f"{CERT_DIR}/app.crt", "--key", f"{CERT_DIR}/app.key"]
    assert (
        curl_status(app, APP, "--cacert", BUNDLE, "--resolve", "app:443:127.0.0.1", *own) == "400"
    )


def test_the_application_is_reachable_only_through_nginx(worker, app):
    assert app.socket("tcp://127.0.0.1:8080").is_listening
    assert not app.socket("tcp://0.0.0.0:8080").is_listening
    assert curl_status(worker, "http://app:8080/").startswith("curl exit 7")


def provenance() -> list[dict]:
    log = Path(os.environ["MTLS_PROVENANCE_LOG"])
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_the_collection_comes_from_the_throwaway_install_only():
    install = Path(os.environ["ANSIBLE_COLLECTIONS_PATH"]).resolve()
    root = install / "ansible_collections" / "mtls" / "rollout"
    checkout = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]).resolve()
    source = [checkout / "plugins", checkout / "roles"]
    site = (Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / "project" / "site.yml").resolve()
    runs = provenance()
    site_runs = [run for run in runs if Path(run["playbook"]).resolve() == site]
    # converge, idempotence and check each ran the site's playbook once.
    assert len(site_runs) == 3
    for run in site_runs:
        assert set(run["roles"]) == {
            "mtls.rollout.step_ca",
            "mtls.rollout.certificate",
            "mtls.rollout.nginx_mtls",
        }
        assert {"mtls.rollout.certificate_role_plan", "mtls.rollout.step_ca_info"} <= set(
            run["modules"]
        )
        assert {"mtls.rollout.nginx_serial", "mtls.rollout.revocation_list"} <= set(run["filters"])
    # Every playbook Molecule ran, its own included, saw the throwaway install only.
    for run in runs:
        assert [Path(p).resolve() for p in run["collections_paths"]] == [install]
        assert [Path(p).resolve() for p in run["package_paths"]] == [root]
        loaded = [*run["roles"].values(), *run["modules"].values(), *run["filters"].values()]
        loaded += run["python"]
        for path in map(Path, loaded):
            resolved = path.resolve()
            assert not any(resolved.is_relative_to(s) for s in source), f"{path} is the checkout's"
            assert resolved.is_relative_to(root), f"{path} is not in {root}"
