# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_stepca against a real step-ca 0.19 started on 127.0.0.1 (see conftest.py)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from conftest import CLIENTS_PASSWORD, SERVERS_PASSWORD, free_port, make_csr
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from ansible_collections.mtls.rollout.plugins.module_utils import (
    _crypto,
    _jose,
    _stepca,
    _stepca_bootstrap,
)


def _load(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def _ekus(cert: x509.Certificate) -> list:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def _assert_chains_to(signed: _stepca.SignedCertificate, root_pem: str) -> None:
    leaf = _load(signed.certificate)
    assert len(signed.chain) == 1
    inter = _load(signed.chain[0])
    root = _load(root_pem)
    leaf.verify_directly_issued_by(inter)
    inter.verify_directly_issued_by(root)
    assert signed.fullchain == signed.certificate + signed.chain[0]


@pytest.fixture(scope="module")
def clients_key(step_ca):
    return step_ca.client().provisioner_key("clients", CLIENTS_PASSWORD.encode())


@pytest.fixture(scope="module")
def servers_key(step_ca):
    return step_ca.client().provisioner_key("servers", SERVERS_PASSWORD.encode())


def test_client_profile_john_doe(step_ca, clients_key):
    csr = make_csr("John Doe", emails=("john.doe@example.com",), rsa_bits=2048)
    signed = step_ca.client().sign(clients_key, _stepca.SignRequest(csr=csr))
    _assert_chains_to(signed, step_ca.root_pem)
    leaf = _load(signed.certificate)
    assert leaf.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value == (
        "John Doe"
    )
    assert signed.sans == ["john.doe@example.com"]
    assert _ekus(leaf) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment  # RSA key
    result = signed.as_dict()
    assert result["serial"] == str(leaf.serial_number)
    assert int(result["serial_hex"], 16) == leaf.serial_number
    assert result["not_after"].endswith("Z")
    # The provisioner's default duration (2h) applies.
    lifetime = _crypto.not_valid_after(leaf) - _crypto.not_valid_before(leaf)
    assert abs(lifetime.total_seconds() - 2 * 3600) <= 120


def test_server_profile_has_server_auth_only(step_ca, servers_key):
    csr = make_csr("web.example.test", dns=("web.example.test", "web"), ips=("192.0.2.10",))
    signed = step_ca.client().sign(servers_key, _stepca.SignRequest(csr=csr, duration="1h"))
    _assert_chains_to(signed, step_ca.root_pem)
    leaf = _load(signed.certificate)
    assert _ekus(leaf) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert sorted(signed.sans) == ["192.0.2.10", "web", "web.example.test"]
    lifetime = _crypto.not_valid_after(leaf) - _crypto.not_valid_before(leaf)
    assert abs(lifetime.total_seconds() - 3600) <= 120


def test_uri_san_and_no_common_name(step_ca, clients_key):
    csr = make_csr("", uris=("spiffe://example.test/workload",))
    signed = step_ca.client().sign(clients_key, _stepca.SignRequest(csr=csr))
    assert signed.sans == ["spiffe://example.test/workload"]


def test_batch_keeps_input_order(step_ca, clients_key):
    names = [f"client-{index}" for index in range(6)]
    requests = [
        _stepca.SignRequest(csr=make_csr(name, dns=(f"{name}.example.test",))) for name in names
    ]
    started = time.monotonic()
    outcomes = step_ca.client().sign_many(clients_key, requests, workers=3)
    assert time.monotonic() - started < 20
    assert all(outcome.ok for outcome in outcomes)
    signed = [outcome.certificate for outcome in outcomes]
    assert [s.subject for s in signed] == [f"CN={name}" for name in names]
    assert len({s.serial for s in signed}) == len(names)
    for item in signed:
        _assert_chains_to(item, step_ca.root_pem)


def test_batch_with_a_refused_item_keeps_the_others(step_ca, clients_key):
    requests = [
        _stepca.SignRequest(csr=make_csr("first.example.test"), sans=[]),
        # Above the provisioner's 24h maximum; sent anyway, so the CA says no.
        _stepca.SignRequest(csr=make_csr("long.example.test"), sans=[], duration="48h"),
        _stepca.SignRequest(csr=make_csr("third.example.test"), sans=[]),
    ]
    outcomes = step_ca.client().sign_many(clients_key, requests, workers=3, check_limits=False)
    assert [outcome.ok for outcome in outcomes] == [True, False, True]
    assert outcomes[0].certificate.subject == "CN=first.example.test"
    assert outcomes[2].certificate.subject == "CN=third.example.test"
    refused = outcomes[1].as_dict()
    assert refused["ok"] is False and refused["error_kind"] == "duration"
    # step-ca's own reason: "requested duration of 48h0m0s is more than the authorized
    # maximum certificate duration of 24h1m0s".
    assert "authorized maximum certificate duration" in refused["msg"]
    assert set(refused) == {"ok", "msg", "error_kind"}
    # The controller's own limit check refuses the same item without asking the CA.
    local = step_ca.client().sign_many(clients_key, requests[1:2])
    assert local[0].error.kind == "duration" and local[0].error.status is None
    assert "outside the limits" in str(local[0].error)


def test_sans_are_normalised_before_the_token(step_ca, servers_key):
    # The csr module writes DNS names lower-case; step-ca compares them case-sensitively
    # with the token's, so the token must carry the same normalised form.
    key = ec.generate_private_key(ec.SECP256R1())
    spec = _crypto.CsrSpec.create(
        {"common_name": "mixed.example.test"},
        ["DNS:Mixed.Example.test", "IP:2001:DB8:0:0::7", "IP:::ffff:192.0.2.7"],
    )
    csr = _crypto.csr_pem(_crypto.build_csr(key, spec))
    request = _stepca.SignRequest(
        csr=csr,
        sans=["MIXED.example.TEST", "2001:db8::0:7", "::FFFF:192.0.2.7"],
    )
    client = step_ca.client()
    assert client.prepare(request).sans == ["mixed.example.test", "192.0.2.7", "2001:db8::7"]
    signed = client.sign(servers_key, request)
    leaf = _load(signed.certificate)
    wanted = _crypto.Desired.create(
        subject={"common_name": "mixed.example.test"},
        subject_alt_names=["DNS:MIXED.example.test", "IP:2001:db8:0::7", "IP:192.0.2.7"],
    )
    verdict = _crypto.evaluate_certificate(leaf, wanted)
    assert not verdict.needs_signing, verdict.reasons


def test_scoped_ipv6_is_refused_for_that_item_only(step_ca, servers_key):
    requests = [
        _stepca.SignRequest(csr=make_csr("fe80.example.test"), sans=["fe80::1%eth0"]),
        _stepca.SignRequest(csr=make_csr("ok.example.test"), sans=[]),
    ]
    first, second = step_ca.client().sign_many(servers_key, requests)
    assert first.error.kind == "invalid"
    assert "scoped IPv6 address" in str(first.error)
    assert "as fe80::1" in str(first.error)
    assert second.ok


def test_same_csr_twice_mints_fresh_tokens(step_ca, clients_key):
    csr = make_csr("again.example.test", dns=("again.example.test",))
    client = step_ca.client()
    first = client.sign(clients_key, _stepca.SignRequest(csr=csr))
    second = client.sign(clients_key, _stepca.SignRequest(csr=csr))
    assert first.serial != second.serial


def test_bootstrap_root_by_fingerprint(step_ca):
    client = step_ca.client(root_fingerprint=step_ca.root_fingerprint.upper())
    assert client.health() == {"status": "ok"}
    assert client.root_pem == step_ca.root_pem
    assert client.version()["version"].startswith("0.19")
    roots = client.roots()
    assert [r.fingerprint(hashes.SHA256()).hex() for r in roots] == [step_ca.root_fingerprint]


def test_root_fingerprint_mismatch_fails_closed(step_ca):
    client = step_ca.client(root_fingerprint="ab" * 32)
    with pytest.raises(_stepca.StepCAError) as caught:
        client.health()
    # step-ca answers 404 for an unknown fingerprint: nothing is trusted.
    assert caught.value.kind == "fingerprint_mismatch"
    assert "root fingerprint mismatch" in str(caught.value)
    assert "ab" * 32 in str(caught.value)


def test_root_pem_and_fingerprint_must_agree(step_ca):
    with pytest.raises(_stepca.StepCAError, match="root fingerprint mismatch") as caught:
        step_ca.client(root_pem=step_ca.root_pem, root_fingerprint="cd" * 32)
    assert caught.value.kind == "fingerprint_mismatch"


def test_foreign_root_fails_tls(step_ca):
    key = ec.generate_private_key(ec.SECP256R1())
    foreign = _stepca.cert_pem(_stepca_bootstrap.make_root("Someone else", key))
    with pytest.raises(_stepca.StepCAError, match="TLS verification") as caught:
        step_ca.client(root_pem=foreign).health()
    assert caught.value.kind == "tls"


def test_provisioners_paginated_and_encrypted_key_endpoint(step_ca):
    client = step_ca.client()
    listed = client.provisioners(page_size=1)
    assert [p["name"] for p in listed] == ["clients", "servers"]
    entry = {"name": "clients", "key": {"kid": listed[0]["key"]["kid"]}}
    assert client.encrypted_key(entry) == listed[0]["encryptedKey"]


def test_wrong_password(step_ca):
    with pytest.raises(_stepca.StepCAError) as caught:
        step_ca.client().provisioner_key("clients", b"not-the-password")
    assert caught.value.kind == "wrong_password"
    assert "wrong password for provisioner 'clients'" in str(caught.value)
    assert "not-the-password" not in str(caught.value)


def test_unknown_provisioner_lists_known(step_ca):
    with pytest.raises(_stepca.StepCAError) as caught:
        step_ca.client().provisioner_key("nobody", b"x")
    assert caught.value.kind == "unknown_provisioner"
    assert "clients (JWK)" in str(caught.value) and "servers (JWK)" in str(caught.value)


def test_san_not_allowed(step_ca, servers_key):
    csr = make_csr("web.example.test", dns=("web.example.test", "evil.example.test"))
    request = _stepca.SignRequest(csr=csr, sans=["web.example.test"])
    with pytest.raises(_stepca.StepCAError) as caught:
        step_ca.client().sign(servers_key, request)
    assert caught.value.kind == "san_not_allowed"
    assert "DNS:evil.example.test" in str(caught.value)


def _post_sign(client, key, csr: str, subject: str, sans: list) -> dict:
    """POST /1.0/sign with a token for ``subject`` and ``sans``, skipping local checks."""
    token = client.mint_token(key, subject, sans=sans)
    return client._request("POST", "/1.0/sign", {"csr": csr, "ott": token}, retry=False)


def test_attacker_csr_with_empty_sans_is_refused_by_the_ca(step_ca, servers_key):
    # A host makes a CSR for CN web that carries DNS:bank.example.com; its item has
    # no SANs. The token authorises exactly what certificate_sans says: DNS:web.
    attacker = make_csr("web", dns=("bank.example.com",))
    client = step_ca.client()
    with pytest.raises(_stepca.StepCAError) as local:
        client.sign(servers_key, _stepca.SignRequest(csr=attacker, subject="web", sans=[]))
    assert local.value.kind == "san_not_allowed"
    sans = _crypto.token_strings(_crypto.certificate_sans("web", []))
    assert sans == ["web"]
    # Without the controller's own check, step-ca refuses the same token: no certificate.
    with pytest.raises(_stepca.StepCAError) as remote:
        _post_sign(client, servers_key, attacker, "web", sans)
    assert remote.value.kind == "san_not_allowed"
    assert remote.value.status == 403
    assert "bank.example.com" in str(remote.value)  # the CA's own message
    # The honest CSR for the same item is signed, with exactly the common name.
    honest = client.sign(
        servers_key, _stepca.SignRequest(csr=make_csr("web"), subject="web", sans=[])
    )
    assert honest.sans == ["web"]
    leaf = _load(honest.certificate)
    assert _crypto.sans_of(leaf.extensions) == _crypto.certificate_sans("web", [])


def test_common_name_mismatch(step_ca, servers_key):
    csr = make_csr("web.example.test", dns=("web.example.test",))
    request = _stepca.SignRequest(csr=csr, subject="other.example.test")
    with pytest.raises(_stepca.StepCAError) as caught:
        step_ca.client().sign(servers_key, request)
    assert caught.value.kind == "san_not_allowed"
    assert "common name" in str(caught.value)


def test_duration_outside_limits_checked_locally(step_ca, clients_key):
    csr = make_csr("long.example.test", dns=("long.example.test",))
    with pytest.raises(_stepca.StepCAError, match="outside the limits") as caught:
        step_ca.client().sign(clients_key, _stepca.SignRequest(csr=csr, duration="48h"))
    assert caught.value.kind == "duration"
    assert "max 24h" in str(caught.value)


@pytest.mark.parametrize("duration", ["48h", "1m"])
def test_duration_outside_limits_refused_by_ca(step_ca, clients_key, duration):
    csr = make_csr("long.example.test", dns=("long.example.test",))
    with pytest.raises(_stepca.StepCAError) as caught:
        step_ca.client().sign(
            clients_key, _stepca.SignRequest(csr=csr, duration=duration), check_limits=False
        )
    assert caught.value.kind == "duration"
    assert caught.value.status == 403
    assert "duration" in str(caught.value)


def test_not_before_and_not_after_rfc3339(step_ca, clients_key):
    csr = make_csr("window.example.test", dns=("window.example.test",))
    request = _stepca.SignRequest(
        csr=csr, not_before="2030-01-01T00:00:00Z", not_after="2030-01-01T12:00:00Z"
    )
    signed = step_ca.client().sign(clients_key, request)
    assert signed.not_before == "2030-01-01T00:00:00Z"
    assert signed.not_after == "2030-01-01T12:00:00Z"


def test_ca_unreachable_after_bounded_retries(step_ca):
    client = _stepca.StepCAClient(
        f"https://127.0.0.1:{free_port()}",
        root_pem=step_ca.root_pem,
        retries=2,
        backoff=0.05,
        timeout=2,
    )
    started = time.monotonic()
    with pytest.raises(_stepca.StepCAError) as caught:
        client.provisioner_key("clients", CLIENTS_PASSWORD.encode())
    assert time.monotonic() - started < 5
    assert caught.value.kind == "unreachable"
    assert "after 3 attempt(s)" in str(caught.value)
    assert "connection refused" in str(caught.value)


def test_wait_healthy_is_bounded(step_ca):
    client = _stepca.StepCAClient(
        f"https://127.0.0.1:{free_port()}", root_pem=step_ca.root_pem, timeout=1
    )
    started = time.monotonic()
    with pytest.raises(_stepca.StepCAError, match="did not become healthy within 1s"):
        client.wait_healthy(1.0, interval=0.2)
    assert time.monotonic() - started < 3
    assert step_ca.client().wait_healthy(5) == {"status": "ok"}


def test_token_claims_verify_with_the_provisioner_key(step_ca, clients_key):
    client = step_ca.client()
    now = time.time()
    token = client.mint_token(clients_key, "John Doe", sans=["john.doe@example.com"])
    header = _jose.jwe_header(token)
    assert header == {"alg": "ES256", "kid": clients_key.kid, "typ": "JWT"}
    claims = _jose.jws_verify_compact(token, _jose.public_jwk(clients_key.jwk))
    assert claims["iss"] == "clients"
    assert claims["aud"] == f"{step_ca.url}/1.0/sign"
    assert claims["sub"] == "John Doe"
    assert claims["sans"] == ["john.doe@example.com"]
    assert claims["sha"] == step_ca.root_fingerprint
    assert abs(claims["iat"] - now) < 5 and claims["nbf"] == claims["iat"]
    assert claims["exp"] - claims["iat"] == 300
    assert len(claims["jti"]) == 64 and int(claims["jti"], 16) >= 0
    other = client.mint_token(clients_key, "John Doe")
    assert _jose.jws_verify_compact(other, clients_key.jwk)["jti"] != claims["jti"]


def test_revoke(step_ca, clients_key):
    client = step_ca.client()
    csr = make_csr("revoked.example.test", dns=("revoked.example.test",))
    signed = client.sign(clients_key, _stepca.SignRequest(csr=csr))
    answer = client.revoke(clients_key, signed.serial, reason="key compromise test", reason_code=1)
    assert answer.get("status") == "ok"
    with pytest.raises(_stepca.StepCAError) as caught:
        client.revoke(clients_key, signed.serial)
    assert str(signed.serial) in str(caught.value)


def test_a_signature_without_answer_is_not_sent_again(step_ca, clients_key):
    """A sign request may have been acted on when its answer is lost: never retried.

    The "CA" here accepts connections and never answers, so every attempt times out
    after the request was sent; a retry could have issued a second certificate.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        client = _stepca.StepCAClient(
            f"https://127.0.0.1:{listener.getsockname()[1]}",
            root_pem=step_ca.root_pem,
            retries=2,
            backoff=0.05,
            timeout=1,
        )
        with pytest.raises(_stepca.StepCAError) as caught:
            client.sign(clients_key, _stepca.SignRequest(csr=make_csr("lost.example.test")))
        assert "not retried" in str(caught.value)
        assert len(accepted) == 1
    finally:
        listener.close()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
