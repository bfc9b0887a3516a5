# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""CSRs, certificates, chains, renewal thresholds and the needs_signing verdict."""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from mtls_testlib import NOW, make_ca, pem

from ansible_collections.mtls.rollout.plugins.module_utils import _crypto

KEY_SPECS = [
    _crypto.KeySpec("ec", "P-256", 256),
    _crypto.KeySpec("ec", "P-384", 384),
    _crypto.KeySpec("ec", "P-521", 521),
    _crypto.KeySpec("rsa", None, 2048),
    _crypto.KeySpec("ed25519", None, 256),
]


@pytest.fixture(scope="module")
def keys():
    return {spec: _crypto.generate_private_key(spec) for spec in KEY_SPECS}


@pytest.fixture(scope="module")
def key():
    return ec.generate_private_key(ec.SECP256R1())


SPEC = _crypto.CsrSpec.create(
    {"common_name": "web.example.com"},
    ["DNS:web.example.com", "IP:10.0.0.5", "IP:2001:db8::5", "email:a@example.com", "URI:x:y"],
    "server",
)


# --------------------------------------------------------------------------- CSRs


@pytest.mark.parametrize("spec", KEY_SPECS, ids=lambda s: s.describe())
@pytest.mark.parametrize("profile", ["client", "server", "both"])
def test_build_csr_every_key_type_and_profile(keys, spec, profile):
    wanted = _crypto.CsrSpec(SPEC.subject, SPEC.sans, profile)
    csr = _crypto.build_csr(keys[spec], wanted)
    assert csr.is_signature_valid
    assert _crypto.csr_mismatches(csr, keys[spec], wanted) == []
    facts = _crypto.csr_facts(csr)
    assert facts["profile"] == profile
    assert facts["subject"] == {"common_name": "web.example.com"}
    assert facts["subject_alt_names"] == [str(s) for s in SPEC.sans]
    usage = csr.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    assert usage.value.key_encipherment is (spec.type == "rsa")
    loaded = _crypto.load_csr(_crypto.csr_pem(csr).encode())
    assert loaded == csr


def test_csr_without_subject_has_critical_san(key):
    spec = _crypto.CsrSpec.create({}, ["DNS:web.example.com"], "server")
    csr = _crypto.build_csr(key, spec)
    assert csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical


def test_csr_needs_subject_or_san():
    with pytest.raises(_crypto.CryptoError, match="needs a subject"):
        _crypto.CsrSpec.create({}, [], "server")


def test_csr_spec_rejects_bad_profile_and_san():
    with pytest.raises(_crypto.CryptoError, match="profile 'admin'"):
        _crypto.CsrSpec.create({"common_name": "x"}, [], "admin")
    with pytest.raises(_crypto.CryptoError, match=re.escape("IP:999.1.1.1")):
        _crypto.CsrSpec.create({"common_name": "x"}, ["IP:999.1.1.1"], "server")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"sans": ["DNS:web.example.com", "DNS:api.example.com"]}, "SANs differ: +DNS:api"),
        ({"sans": []}, "SANs differ: -DNS:web.example.com"),
        ({"subject": {"common_name": "api.example.com"}}, "subject differs"),
        ({"profile": "client"}, "profile differs: server, wanted client"),
    ],
)
def test_csr_mismatches(key, change, reason):
    base = _crypto.CsrSpec.create({"common_name": "web.example.com"}, ["DNS:web.example.com"])
    csr = _crypto.build_csr(key, base)
    wanted = _crypto.CsrSpec.create(
        change.get("subject", {"common_name": "web.example.com"}),
        change.get("sans", ["DNS:web.example.com"]),
        change.get("profile", "server"),
    )
    mismatches = _crypto.csr_mismatches(csr, key, wanted)
    assert any(m.startswith(reason) for m in mismatches), mismatches


def test_csr_mismatch_other_key(key):
    csr = _crypto.build_csr(key, SPEC)
    other = ec.generate_private_key(ec.SECP256R1())
    assert "CSR does not match the private key" in _crypto.csr_mismatches(csr, other, SPEC)


def test_load_csr_rejects_garbage():
    with pytest.raises(_crypto.CryptoError, match=re.escape("/x.csr is not a readable CSR")):
        _crypto.load_csr(b"-----BEGIN CERTIFICATE REQUEST-----\nAA\n", "/x.csr")


# -------------------------------------------------------------------- certificates


def test_load_certificates_bundle_and_der(test_ca):
    bundle = pem(test_ca.intermediate) + b"junk between\n" + pem(test_ca.root)
    certs = _crypto.load_certificates(bundle)
    assert [c.subject for c in certs] == [test_ca.intermediate.subject, test_ca.root.subject]
    assert _crypto.load_certificate(test_ca.root.public_bytes(Encoding.DER)) == test_ca.root


@pytest.mark.parametrize(
    "data", [b"", b"-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----"]
)
def test_load_certificates_rejects(data):
    with pytest.raises(_crypto.CryptoError, match=re.escape("/b.pem")):
        _crypto.load_certificates(data, "/b.pem")


def test_certificate_facts(test_ca, key):
    cert = test_ca.issue(
        key.public_key(),
        sans=[
            x509.DNSName("web.example.com"),
            x509.IPAddress(ipaddress.ip_address("10.0.0.5")),
        ],
        not_before=NOW - timedelta(hours=18),
        lifetime=timedelta(hours=24),
    )
    facts = _crypto.certificate_facts(cert, NOW)
    assert facts["common_name"] == "web.example.com"
    assert facts["subject_alt_names"] == ["DNS:web.example.com", "IP:10.0.0.5"]
    assert facts["issuer"] == {"common_name": "Test Intermediate CA"}
    assert facts["serial"] == _crypto.serial_hex(cert.serial_number)
    assert len(facts["serial"]) % 2 == 0 and facts["serial"] == facts["serial"].upper()
    assert int(facts["serial"], 16) == cert.serial_number
    assert facts["remaining_seconds"] == 6 * 3600
    assert facts["lifetime_seconds"] == 24 * 3600
    assert facts["remaining_fraction"] == 0.25
    assert facts["not_after"] == (NOW + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert facts["profile"] == "server"
    assert facts["extended_key_usage"] == ["serverAuth"]
    assert (facts["key_type"], facts["key_size"]) == ("ec", 256)
    assert facts["public_key_fingerprint"] == _crypto.public_key_fingerprint(key)


def test_chains_to_through_intermediate(test_ca, other_ca, key):
    cert = test_ca.issue(key.public_key())
    ok, message = _crypto.chains_to(cert, [test_ca.root], [test_ca.intermediate], NOW)
    assert ok, message
    assert "Test Root CA" in message
    ok, message = _crypto.chains_to(cert, [test_ca.root], [], NOW)
    assert not ok
    assert "no issuer" in message
    ok, _ = _crypto.chains_to(cert, [other_ca.root], [test_ca.intermediate], NOW)
    assert not ok
    ok, _ = _crypto.chains_to(cert, [test_ca.intermediate], [], NOW)
    assert ok
    assert _crypto.chains_to(cert, [], [], NOW) == (False, "the trust bundle holds no certificate")


def test_chains_to_rejects_forged_issuer_name(test_ca, other_ca, key):
    # Same issuer name as the real intermediate, but signed by another key.
    forged = test_ca.issue(key.public_key(), issuer_key=other_ca.intermediate_key)
    assert not _crypto.is_issued_by(forged, test_ca.intermediate)
    ok, _ = _crypto.chains_to(forged, [test_ca.root], [test_ca.intermediate], NOW)
    assert not ok


@pytest.mark.parametrize("root_key_type", ["ec", "rsa"])
def test_verify_signature_fallback_for_old_cryptography(root_key_type, key):
    # verify_signature is what runs on cryptography < 40 (Debian 12 has 38).
    root_key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if root_key_type == "rsa"
        else ec.generate_private_key(ec.SECP384R1())
    )
    ca = make_ca("Fallback", root_key)
    assert _crypto.verify_signature(ca.intermediate, ca.root.public_key())
    assert not _crypto.verify_signature(ca.intermediate, ca.intermediate.public_key())
    assert not _crypto.verify_signature(ca.root, key.public_key())


def test_verify_signature_ed25519():
    ca = make_ca("Ed", ed25519.Ed25519PrivateKey.generate())
    assert _crypto.verify_signature(ca.intermediate, ca.root.public_key())
    assert _crypto.is_issued_by(ca.intermediate, ca.root)


# ------------------------------------------------------------------------ renewal


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("8h", 28800),
        ("7d", 604800),
        ("1h30m", 5400),
        ("90s", 90),
        ("2w", 1209600),
        ("1d 2h", 93600),
    ],
)
def test_parse_duration(text, seconds):
    assert _crypto.parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "text", ["", "8", "h", "8x", "8h-", "-8h", "eight hours", "5ms", "1h 30", None]
)
def test_parse_duration_rejects(text):
    with pytest.raises(_crypto.CryptoError, match=r"duration .* use numbers with units w, d"):
        _crypto.parse_duration(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("24h", 86400),
        ("1h30m", 5400),
        ("90s", 90),
        ("1.5h", 5400),
        ("300ms", 0.3),
        ("5\u00b5s", 5e-6),
        ("0", 0),
        ("-5m", -300),
        ("+5m", 300),
        ("24h0m0s", 86400),
    ],
)
def test_parse_duration_go_grammar(text, seconds):
    # What step-ca takes for notAfter and its provisioner claims (Go's time.ParseDuration).
    assert _crypto.parse_duration(text, go=True) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "24", "1d", "2w", "h", "5m junk", "1h-5m", "1H", 5, None])
def test_parse_duration_go_grammar_rejects(text):
    with pytest.raises(_crypto.CryptoError, match="units h, m, s, ms, us, ns"):
        _crypto.parse_duration(text, go=True)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (45, "45s"), (3 * 3600, "3h"), (93600 + 61, "1d 2h"), (5400, "1h 30m")],
)
def test_format_duration(seconds, text):
    assert _crypto.format_duration(seconds) == text


@pytest.mark.parametrize(
    ("value", "fraction", "seconds"),
    [
        (0.33, 0.33, None),
        ("0.33", 0.33, None),
        ("33%", 0.33, None),
        (0, 0.0, None),
        ("8h", None, 28800),
        ("7d", None, 604800),
    ],
)
def test_renew_before_parse(value, fraction, seconds):
    threshold = _crypto.RenewBefore.parse(value)
    assert threshold.seconds == seconds
    if fraction is None:
        assert threshold.fraction is None
    else:
        assert threshold.fraction == pytest.approx(fraction)


@pytest.mark.parametrize("value", ["1", "1.5", "-0.1", "150%", "soon", True, "8"])
def test_renew_before_rejects(value):
    with pytest.raises(_crypto.CryptoError, match="renew_before"):
        _crypto.RenewBefore.parse(value)


def test_renew_before_threshold_arithmetic():
    third = _crypto.RenewBefore.parse("0.33")
    assert third.threshold_seconds(86400) == 28512
    assert third.describe(86400) == "33% of its lifetime (7h 55m)"
    hours = _crypto.RenewBefore.parse("8h")
    assert hours.threshold_seconds(86400) == 28800
    assert hours.threshold_seconds(3600) == 28800
    assert hours.describe(86400) == "8h"


def _verdict(ca, key, desired_kwargs=None, cert_kwargs=None, key_for_desired=None, chain=True):
    cert = ca.issue(key.public_key(), **(cert_kwargs or {}))
    desired = _crypto.Desired.create(**(desired_kwargs or {}))
    desired.key = key_for_desired if key_for_desired is not None else key
    desired.anchors = [ca.root]
    desired.intermediates = [ca.intermediate] if chain else []
    return _crypto.evaluate_certificate(cert, desired, NOW)


WANTED = {
    "subject": {"common_name": "web.example.com"},
    "subject_alt_names": ["DNS:web.example.com"],
    "profile": "server",
    "renew_before": "0.33",
}


def test_verdict_valid_certificate(test_ca, key):
    verdict = _verdict(test_ca, key, WANTED)
    assert not verdict.needs_signing, verdict.reasons
    assert verdict.reason == "certificate is valid"
    assert verdict.facts["matches_key"] is True
    assert verdict.facts["chains_to_trust"] is True
    assert verdict.facts["renew_threshold_seconds"] == 28512


@pytest.mark.parametrize(
    ("desired", "cert_kwargs", "reason"),
    [
        (
            {"subject_alt_names": ["DNS:web.example.com", "DNS:api.example.com"]},
            {},
            "SANs differ: +DNS:api.example.com",
        ),
        ({"subject": {"common_name": "api.example.com"}}, {}, "subject common_name differs"),
        ({"profile": "client"}, {}, "profile is server, wanted client"),
        (
            {"profile": "client"},
            {"ekus": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]},
            "profile is both, wanted client",
        ),
        (
            {"renew_before": "8h"},
            {"not_before": NOW - timedelta(hours=21)},
            "certificate expires in 3h, below the renewal threshold of 8h",
        ),
        (
            {"renew_before": "0.33"},
            {"not_before": NOW - timedelta(hours=20)},
            "certificate expires in 4h, below the renewal threshold of 33% of its lifetime",
        ),
        ({}, {"not_before": NOW - timedelta(hours=26)}, "certificate expired 2h ago"),
        ({}, {"not_before": NOW + timedelta(hours=2)}, "certificate is not valid before"),
    ],
)
def test_verdict_needs_signing(test_ca, key, desired, cert_kwargs, reason):
    verdict = _verdict(test_ca, key, dict(WANTED, **desired), cert_kwargs)
    assert verdict.needs_signing
    assert any(r.startswith(reason) for r in verdict.reasons), verdict.reasons
    assert reason in verdict.reason


def test_verdict_threshold_boundary(test_ca, key):
    # 9h left of 24h with an 8h threshold: keep; 7h59m left: renew.
    fine = _verdict(test_ca, key, {"renew_before": "8h"}, {"not_before": NOW - timedelta(hours=15)})
    assert not fine.needs_signing
    due = _verdict(
        test_ca,
        key,
        {"renew_before": "8h"},
        {"not_before": NOW - timedelta(hours=16, minutes=1)},
    )
    assert due.needs_signing


def test_verdict_key_mismatch(test_ca, key):
    other = ec.generate_private_key(ec.SECP256R1())
    verdict = _verdict(test_ca, key, WANTED, key_for_desired=other)
    assert verdict.reasons == ["certificate does not match key"]
    assert verdict.facts["matches_key"] is False


def test_verdict_untrusted(test_ca, key):
    verdict = _verdict(test_ca, key, WANTED, chain=False)
    assert verdict.needs_signing
    assert verdict.reasons[0].startswith("certificate does not chain to the trust bundle")
    assert verdict.facts["chains_to_trust"] is False


def test_verdict_many_reasons_joined(test_ca, key):
    verdict = _verdict(
        test_ca,
        key,
        dict(WANTED, profile="client", subject_alt_names=[]),
        {"sans": [x509.DNSName("web.example.com"), x509.DNSName("old.example.com")]},
    )
    assert len(verdict.reasons) == 2
    assert verdict.reason == "; ".join(verdict.reasons)


def test_verdict_no_sans_wanted_means_the_common_name_alone(test_ca, key):
    # step-ca copies the CN into the SANs when the token names none; that is the
    # one certificate an item without SANs gets, so it is the only one accepted.
    verdict = _verdict(test_ca, key, dict(WANTED, subject_alt_names=[]))
    assert not verdict.needs_signing, verdict.reasons
    no_san = _verdict(test_ca, key, dict(WANTED, subject_alt_names=[]), {"sans": []})
    assert no_san.reasons == ["SANs differ: +DNS:web.example.com"]
    extra = _verdict(
        test_ca,
        key,
        dict(WANTED, subject_alt_names=[]),
        {"sans": [x509.DNSName("web.example.com"), x509.DNSName("bank.example.com")]},
    )
    assert extra.reasons == ["SANs differ: -DNS:bank.example.com"]


def test_verdict_unchecked_parts(test_ca, key):
    cert = test_ca.issue(key.public_key(), ekus=[])
    verdict = _crypto.evaluate_certificate(cert, _crypto.Desired(), NOW)
    assert not verdict.needs_signing
    assert verdict.facts["matches_key"] is None
    assert verdict.facts["chains_to_trust"] is None
    assert verdict.facts["profile"] == "none"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subject_alt_names": ["DNS:"]}, "DNS name is empty"),
        ({"profile": "admin"}, "profile 'admin'"),
        ({"renew_before": "soon"}, "renew_before 'soon'"),
        ({"subject": {"country_name": "Germany"}}, "two-letter"),
    ],
)
def test_desired_rejects_bad_input(kwargs, message):
    with pytest.raises(_crypto.CryptoError, match=message):
        _crypto.Desired.create(**kwargs)
