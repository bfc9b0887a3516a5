"""What users see after side_effect.yml rotated the CA's intermediate and then its root
while the client curled the server in a loop: every answer 200, and every certificate of
the fleet under the new root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import curl_status
from cryptography import x509
from cryptography.hazmat.primitives import serialization

EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))
BUNDLE = "/etc/ssl/mtls/ca-bundle.pem"
LOG = "/var/log/rotation-answers.log"
STEPS = ["rotate_intermediate", "prepare", "switch", "finish-refused", "finish"]
# At least this many answers during each run: the loop really ran across it.
MIN_ANSWERS = 5


def pems(text: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(text.encode())


def saved(name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((EPHEMERAL / name).read_bytes())


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture
def client(container):
    return container("rotation-client")


@pytest.fixture
def answers(client):
    """The loop's log: per step, the answers between its START and END marks; and all."""
    windows: dict[str, list[str]] = {}
    every: list[str] = []
    open_step = None
    for line in client.file(LOG).content_string.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1] in ("START", "END"):
            open_step = fields[2] if fields[1] == "START" else None
            windows.setdefault(fields[2], [])
        elif len(fields) == 2:
            every.append(fields[1])
            if open_step:
                windows[open_step].append(fields[1])
        else:  # a curl that printed nothing at all
            every.append(line)
    return windows, every


def test_every_answer_during_the_rotations_was_200(answers):
    _windows, every = answers
    assert every, "the loop wrote nothing"
    assert [code for code in every if code != "200"] == []


def test_the_loop_answered_during_each_run(answers):
    windows, every = answers
    assert sorted(windows) == sorted(STEPS)
    for step in STEPS:
        if step != "finish-refused":  # a short run
            assert len(windows[step]) >= MIN_ANSWERS, (step, len(windows[step]))
    # ... and before the first run and after the last one.
    assert len(every) > sum(len(w) for w in windows.values()) + MIN_ANSWERS


def test_the_probe_issued_after_the_intermediate_rotation_chains_to_the_new_one(client):
    chain = pems(client.file("/etc/ssl/mtls/probe.crt").content_string)
    rotated = saved("prepared-intermediate_ca.crt")
    assert der(chain[1]) == der(rotated)
    assert der(rotated) != der(saved("before-intermediate_ca.crt"))
    assert chain[0].issuer == rotated.subject
    chain[0].verify_directly_issued_by(rotated)
    # The rotated intermediate is under the same (old) root.
    rotated.verify_directly_issued_by(saved("before-root_ca.crt"))


def test_the_trust_bundles_held_both_roots_during_the_rotation():
    bundle = pems((EPHEMERAL / "prepared-ca-bundle.pem").read_text())
    expected = {der(saved("before-root_ca.crt")), der(saved("prepared-root_ca_next.crt"))}
    assert {der(cert) for cert in bundle} == expected


@pytest.mark.parametrize("host", ["rotation-client", "rotation-web"])
def test_the_trust_bundle_holds_the_new_root_alone(container, host):
    ca_root = container("rotation-ca").file("/etc/step-ca/certs/root_ca.crt").content_string
    assert der(pems(ca_root)[0]) == der(saved("prepared-root_ca_next.crt"))
    assert [der(c) for c in pems(container(host).file(BUNDLE).content_string)] == [
        der(saved("prepared-root_ca_next.crt"))
    ]


def test_the_ca_keeps_no_rotation_files(container):
    ca = container("rotation-ca")
    for name in ("root_ca_next.crt", "intermediate_ca_next.crt", "root_ca_previous.crt"):
        assert not ca.file(f"/etc/step-ca/certs/{name}").exists
    assert not ca.file("/etc/step-ca/secrets/root_ca_next_key").exists


@pytest.mark.parametrize(
    ("host", "path"),
    [("rotation-client", "/etc/ssl/mtls/worker.crt"), ("rotation-web", "/etc/ssl/mtls/web.crt")],
)
def test_every_certificate_chains_to_the_new_root(container, host, path):
    machine = container(host)
    chain = pems(machine.file(path).content_string)
    assert chain[1].issuer == saved("prepared-root_ca_next.crt").subject
    chain[1].verify_directly_issued_by(saved("prepared-root_ca_next.crt"))
    chain[0].verify_directly_issued_by(chain[1])


def test_curl_with_the_new_root_alone_gets_200(client):
    assert (
        curl_status(
            client,
            "https://web/",
            "--cacert",
            BUNDLE,
            "--cert",
            "/etc/ssl/mtls/worker.crt",
            "--key",
            "/etc/ssl/mtls/worker.key",
        )
        == "200"
    )
    # Without a client certificate NGINX refuses (verify_client on).
    assert curl_status(client, "https://web/", "--cacert", BUNDLE) == "400"
