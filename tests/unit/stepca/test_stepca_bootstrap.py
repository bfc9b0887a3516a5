# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_stepca_bootstrap: CA certificates, provisioner entries, templates, ca.json.

That step-ca accepts all of this is shown by the session CA of conftest.py, which
is built with these functions, and by the signing tests in test_stepca_live.py.
"""

from __future__ import annotations

import datetime
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from ansible_collections.mtls.rollout.plugins.module_utils import _jose, _stepca_bootstrap


@pytest.fixture(scope="module")
def pki():
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _stepca_bootstrap.make_root("Test Root CA", root_key)
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = _stepca_bootstrap.make_intermediate("Test Intermediate CA", root, root_key, inter_key)
    return root_key, root, inter_key, inter


def _years(cert: x509.Certificate) -> float:
    return (cert.not_valid_after_utc - cert.not_valid_before_utc) / datetime.timedelta(days=365)


def test_root(pki):
    root_key, root, _, _ = pki
    assert root.subject == root.issuer
    assert root.subject.rfc4514_string() == "CN=Test Root CA"
    root.verify_directly_issued_by(root)
    constraints = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 1
    usage = root.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
    assert 9.9 < _years(root) < 10.1
    assert root.not_valid_before_utc < datetime.datetime.now(datetime.timezone.utc)


def test_intermediate(pki):
    _, root, inter_key, inter = pki
    inter.verify_directly_issued_by(root)
    assert inter.issuer == root.subject
    constraints = inter.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    aki = inter.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    root_ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == root_ski.digest
    assert inter.public_key().public_numbers() == inter_key.public_key().public_numbers()
    assert 4.9 < _years(inter) < 5.1
    assert inter.not_valid_after_utc <= root.not_valid_after_utc


def test_make_root_needs_a_name():
    with pytest.raises(ValueError, match="common name"):
        _stepca_bootstrap.make_root("", ec.generate_private_key(ec.SECP256R1()))


@pytest.mark.parametrize("password", ["provisioner-pass", b"provisioner-pass"])
def test_jwk_provisioner_entry(password):
    claims = {"minTLSCertDuration": "5m", "maxTLSCertDuration": "24h"}
    template = _stepca_bootstrap.client_only_template()
    entry = _stepca_bootstrap.make_jwk_provisioner("clients", password, claims, template)
    assert entry["type"] == "JWK" and entry["name"] == "clients"
    assert entry["claims"] == claims and entry["claims"] is not claims
    assert entry["options"] == {"x509": {"template": template}}
    key = entry["key"]
    assert "d" not in key
    assert key["kid"] == _jose.jwk_thumbprint(key)
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")
    header = _jose.jwe_header(entry["encryptedKey"])
    assert (header["alg"], header["enc"], header["cty"]) == (
        "PBES2-HS256+A128KW",
        "A256GCM",
        "jwk+json",
    )
    private = json.loads(_jose.jwe_decrypt_pbes2(entry["encryptedKey"], b"provisioner-pass"))
    assert _jose.public_jwk(private) == key
    with pytest.raises(_jose.JoseError, match="wrong password"):
        _jose.jwe_decrypt_pbes2(entry["encryptedKey"], b"other")


def test_jwk_provisioner_without_template_or_claims():
    entry = _stepca_bootstrap.make_jwk_provisioner("any", "pw-pw-pw", {}, None)
    assert "options" not in entry and "claims" not in entry
    with pytest.raises(ValueError, match="must not be empty"):
        _stepca_bootstrap.make_jwk_provisioner("any", "", {}, None)


@pytest.mark.parametrize(
    ("template", "eku"),
    [
        (_stepca_bootstrap.client_only_template(), "clientAuth"),
        (_stepca_bootstrap.server_only_template(), "serverAuth"),
    ],
)
def test_templates_carry_subject_and_sans(template, eku):
    assert '"subject": {{ toJson .Subject }}' in template
    assert '"sans": {{ toJson .SANs }}' in template
    assert f'"extKeyUsage": ["{eku}"]' in template
    assert template.count("extKeyUsage") == 1
    # Rendered for an EC key (the else branch), the template is valid JSON.
    rendered = (
        template.replace("{{ toJson .Subject }}", '{"commonName": "x"}')
        .replace("{{ toJson .SANs }}", "[]")
        .split("{{- if", 1)
    )
    head, rest = rendered
    ec_branch = rest.split("{{- else }}", 1)[1].split("{{- end }}", 1)
    document = json.loads(head + ec_branch[0] + ec_branch[1])
    assert document["extKeyUsage"] == [eku]
    assert document["keyUsage"] == ["digitalSignature"]


def test_build_ca_config():
    provisioners = [{"type": "JWK", "name": "p"}]
    config = _stepca_bootstrap.build_ca_config(
        root_path="/etc/step-ca/certs/root_ca.crt",
        crt_path="/etc/step-ca/certs/intermediate_ca.crt",
        key_path="/etc/step-ca/secrets/intermediate_ca_key",
        address=":9000",
        dns_names=["ca.example.test", "10.0.0.5"],
        db_dir="/var/lib/step-ca/db",
        provisioners=provisioners,
    )
    assert config["root"] == "/etc/step-ca/certs/root_ca.crt"
    assert config["crt"] == "/etc/step-ca/certs/intermediate_ca.crt"
    assert config["key"] == "/etc/step-ca/secrets/intermediate_ca_key"
    assert config["address"] == ":9000"
    assert config["dnsNames"] == ["ca.example.test", "10.0.0.5"]
    assert config["db"] == {"type": "badgerv2", "dataSource": "/var/lib/step-ca/db"}
    assert config["authority"]["provisioners"] == provisioners
    assert config["tls"]["minVersion"] == 1.2
    json.dumps(config)  # serialisable as is
    again = _stepca_bootstrap.build_ca_config(
        "/etc/step-ca/certs/root_ca.crt",
        "/etc/step-ca/certs/intermediate_ca.crt",
        "/etc/step-ca/secrets/intermediate_ca_key",
        ":9000",
        ["ca.example.test", "10.0.0.5"],
        "/var/lib/step-ca/db",
        provisioners,
    )
    assert again == config
    with pytest.raises(ValueError, match="dns_names"):
        _stepca_bootstrap.build_ca_config("r", "c", "k", ":9000", [], "db", [])
