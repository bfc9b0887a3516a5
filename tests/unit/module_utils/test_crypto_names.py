# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SAN parsing, validation and comparison; subject names; profiles."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_collections.mtls.rollout.plugins.module_utils import _crypto


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("DNS:web.example.com", "DNS", "web.example.com"),
        ("dns:Web.Example.COM", "DNS", "web.example.com"),
        ("DNS: localhost ", "DNS", "localhost"),
        ("DNS:*.example.com", "DNS", "*.example.com"),
        ("DNS:xn--bcher-kva.example", "DNS", "xn--bcher-kva.example"),
        ("IP:10.0.0.5", "IP", "10.0.0.5"),
        ("ip:2001:DB8:0:0::5", "IP", "2001:db8::5"),
        ("IP:::1", "IP", "::1"),
        ("IP:::FFFF:192.0.2.1", "IP", "192.0.2.1"),
        ("email:John@Example.COM", "email", "John@example.com"),
        ("EMAIL:a.b+c@mail.example.org", "email", "a.b+c@mail.example.org"),
        ("URI:spiffe://example.org/ns/web", "URI", "spiffe://example.org/ns/web"),
        ("uri:urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", "URI", None),
        ("URI:https://example.com/a?b=c", "URI", "https://example.com/a?b=c"),
        # step-ca (Go's url.Parse) writes the scheme in lower case, and only the scheme.
        ("URI:SPIFFE://Example.org/Web", "URI", "spiffe://Example.org/Web"),
    ],
)
def test_parse_san(text, kind, value):
    san = _crypto.parse_san(text)
    assert san.kind == kind
    if value is not None:
        assert san.value == value
    assert str(san) == f"{san.kind}:{san.value}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("IP:999.1.1.1", "'IP:999.1.1.1' is not a valid IPv4 or IPv6 address"),
        ("IP:10.0.0", "'IP:10.0.0' is not a valid"),
        ("IP:2001:db8::g", "'IP:2001:db8::g'"),
        ("IP:", "'IP:'"),
        ("IP:fe80::1%eth0", "scoped IPv6 address .* without the zone, as fe80::1"),
        ("IP:fe80::1%", "scoped IPv6 address"),
        ("DNS:", "'DNS:': the DNS name is empty"),
        ("DNS:   ", "the DNS name is empty"),
        ("DNS:web.*.example.com", "'DNS:web.\\*.example.com': a wildcard must be"),
        ("DNS:*web.example.com", "a wildcard must be the whole left-most label"),
        ("DNS:*.*.example.com", "a wildcard must be"),
        ("DNS:*.com", "a wildcard needs at least two labels"),
        ("DNS:web..example.com", "empty label"),
        ("DNS:-web.example.com", "'-web'"),
        ("DNS:web_1.example.com", "'web_1'"),
        ("DNS:" + "a" * 64 + ".com", "63 characters"),
        ("DNS:" + ".".join(["a" * 60] * 5), "longer than 253"),
        ("DNS:bücher.example", "punycode"),
        ("email:nobody", "'email:nobody' is not a valid email address"),
        ("email:@example.com", "not a valid email"),
        ("email:a b@example.com", "not a valid email"),
        ("email:a@*.example.com", "wildcard is not allowed"),
        ("URI:no-scheme", "'URI:no-scheme' is not a valid URI"),
        ("URI:https://a b", "not a valid URI"),
        ("URI:spiffe:", "nothing follows the scheme"),
        ("URI:spiffe://example.org/café", "percent-encode non-ASCII"),
        ("web.example.com", "needs a type prefix"),
        ("XYZ:foo", "'XYZ:foo' needs a type prefix"),
        (42, "must be a string"),
    ],
)
def test_parse_san_rejects_and_names_the_value(text, message):
    with pytest.raises(_crypto.CryptoError, match=message):
        _crypto.parse_san(text)


def test_parse_sans_sorts_and_dedups():
    sans = _crypto.parse_sans(["IP:10.0.0.1", "DNS:B.example.com", "dns:b.example.com"])
    assert [str(s) for s in sans] == ["DNS:b.example.com", "IP:10.0.0.1"]
    assert _crypto.parse_sans(None) == ()


@pytest.mark.parametrize(
    ("san", "general_name"),
    [
        ("DNS:web.example.com", x509.DNSName("web.example.com")),
        ("IP:10.0.0.5", x509.IPAddress(ipaddress.ip_address("10.0.0.5"))),
        ("IP:2001:db8::5", x509.IPAddress(ipaddress.ip_address("2001:db8::5"))),
        ("email:a@example.com", x509.RFC822Name("a@example.com")),
        (
            "URI:spiffe://example.org/web",
            x509.UniformResourceIdentifier("spiffe://example.org/web"),
        ),
    ],
)
def test_san_round_trip_through_extension(san, general_name):
    parsed = _crypto.parse_san(san)
    assert parsed.general_name() == general_name
    extensions = x509.Extensions(
        [
            x509.Extension(
                x509.SubjectAlternativeName.oid,
                False,
                x509.SubjectAlternativeName([general_name]),
            )
        ]
    )
    assert _crypto.sans_of(extensions) == (parsed,)


def test_sans_of_normalises_certificate_values():
    ext = x509.SubjectAlternativeName(
        [x509.DNSName("WEB.example.com"), x509.RFC822Name("A@EXAMPLE.com")]
    )
    extensions = x509.Extensions([x509.Extension(ext.oid, False, ext)])
    assert [str(s) for s in _crypto.sans_of(extensions)] == [
        "DNS:web.example.com",
        "email:A@example.com",
    ]
    assert _crypto.sans_of(x509.Extensions([])) == ()


def test_format_san_diff():
    current = _crypto.parse_sans(["DNS:web.example.com", "IP:10.0.0.1"])
    desired = _crypto.parse_sans(["DNS:web.example.com", "DNS:api.example.com"])
    assert _crypto.format_san_diff(current, desired) == "+DNS:api.example.com, -IP:10.0.0.1"
    assert _crypto.format_san_diff(current, current) is None
    ipv6_a = _crypto.parse_sans(["IP:2001:db8:0::1"])
    ipv6_b = _crypto.parse_sans(["IP:2001:DB8::1"])
    assert _crypto.format_san_diff(ipv6_a, ipv6_b) is None


@pytest.mark.parametrize(
    ("common_name", "requested", "expected"),
    [
        # No SANs: the common name alone, typed the way step-ca types a token SAN.
        ("web.example.com", [], ["DNS:web.example.com"]),
        ("Web.Example.COM", None, ["DNS:web.example.com"]),
        ("10.0.0.5", [], ["IP:10.0.0.5"]),
        ("2001:DB8:0::1", [], ["IP:2001:db8::1"]),
        ("john@Example.com", [], ["email:john@example.com"]),
        ("spiffe://example.org/web", [], ["URI:spiffe://example.org/web"]),
        ("John Doe", [], ["DNS:john doe"]),
        (None, [], []),
        ("", None, []),
        # SANs given: exactly those, never the common name as well.
        ("web", ["DNS:web.example.com", "IP:10.0.0.5"], ["DNS:web.example.com", "IP:10.0.0.5"]),
        ("web", ["DNS:b.example.com", "dns:B.example.com"], ["DNS:b.example.com"]),
    ],
)
def test_certificate_sans(common_name, requested, expected):
    sans = None if requested is None else _crypto.parse_sans(requested)
    assert [str(s) for s in _crypto.certificate_sans(common_name, sans)] == expected


def test_certificate_sans_refuses_a_common_name_that_cannot_be_a_san():
    with pytest.raises(_crypto.CryptoError, match="give subject_alt_names"):
        _crypto.certificate_sans("Jürgen Müller", [])


def test_build_name_order_and_round_trip():
    fields = {
        "common_name": "web.example.com",
        "organization_name": "Example Ltd",
        "organizational_unit_name": "Ops",
        "country_name": "DE",
        "state_or_province_name": "Berlin",
        "locality_name": "Berlin",
        "email_address": "ops@example.com",
        "unused": None,
    }
    fields.pop("unused")
    name = _crypto.build_name(dict(fields, locality_name=None))
    assert name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "web.example.com"
    assert not name.get_attributes_for_oid(NameOID.LOCALITY_NAME)
    assert next(iter(name)).oid == NameOID.COUNTRY_NAME
    full = _crypto.build_name(fields)
    assert _crypto.name_to_dict(full) == fields


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"country_name": "Germany"}, "'Germany' must be a two-letter code"),
        ({"common_name": "x" * 65}, "longer than 64"),
        ({"surname": "Doe"}, "unknown subject field"),
    ],
)
def test_build_name_rejects(fields, message):
    with pytest.raises(_crypto.CryptoError, match=message):
        _crypto.build_name(fields)


def _eku_extensions(*oids):
    ext = x509.ExtendedKeyUsage(list(oids))
    return x509.Extensions([x509.Extension(ext.oid, False, ext)])


@pytest.mark.parametrize(
    ("oids", "profile"),
    [
        ((ExtendedKeyUsageOID.SERVER_AUTH,), "server"),
        ((ExtendedKeyUsageOID.CLIENT_AUTH,), "client"),
        ((ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH), "both"),
        ((ExtendedKeyUsageOID.CODE_SIGNING,), "other"),
    ],
)
def test_profile_of(oids, profile):
    assert _crypto.profile_of(_eku_extensions(*oids)) == profile


def test_profile_of_without_eku():
    assert _crypto.profile_of(x509.Extensions([])) == "none"
    assert _crypto.eku_names(x509.Extensions([])) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # step-ca's order: an IP address, else a URI, else an e-mail, else a DNS name.
        ("WEB.Example.com", "DNS:web.example.com"),
        (" web.example.com ", "DNS:web.example.com"),
        ("2001:DB8:0:0::1", "IP:2001:db8::1"),
        ("::ffff:192.0.2.1", "IP:192.0.2.1"),
        ("192.0.2.1", "IP:192.0.2.1"),
        ("John@Example.COM", "email:John@example.com"),
        ("spiffe://example.org/web", "URI:spiffe://example.org/web"),
        ("urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", None),
    ],
)
def test_read_token_san_normalises(value, expected):
    san = _crypto.read_token_san(value)
    if expected is None:
        assert san.kind == "URI" and san.value == value
    else:
        assert str(san) == expected
    # Normalising twice changes nothing, and the token carries the normalised value.
    assert _crypto.read_token_san(san.value) == san
    assert _crypto.token_strings([san]) == [san.value]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("fe80::1%eth0", "scoped IPv6 address .* give it without the zone, as fe80::1"),
        ("web_1.example.com", "'web_1'"),
        ("John Doe", "'DNS:John Doe': label 'john doe'"),
        ("", "DNS name is empty"),
    ],
)
def test_read_token_san_refuses(value, message):
    with pytest.raises(_crypto.CryptoError, match=message):
        _crypto.read_token_san(value)


def test_scoped_ipv6_common_name_is_refused_too():
    with pytest.raises(_crypto.CryptoError, match="scoped IPv6"):
        _crypto.certificate_sans("fe80::1%eth0", [])


@pytest.mark.parametrize(
    ("san", "read_as"),
    [
        ("DNS:10.0.0.5", "IP:10.0.0.5"),
        ("email:a:b@example.com", "URI:a:b@example.com"),
    ],
)
def test_token_strings_refuse_what_step_ca_would_type_otherwise(san, read_as):
    with pytest.raises(_crypto.CryptoError, match=f"would read .* as {read_as}"):
        _crypto.token_strings([_crypto.parse_san(san)])
