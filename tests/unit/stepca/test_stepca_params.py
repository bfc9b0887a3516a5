# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_stepca helpers and module option handling that need no CA."""

from __future__ import annotations

import pytest
from conftest import make_csr

from ansible_collections.mtls.rollout.plugins.module_utils import (
    _stepca,
    _stepca_modules,
    _stepca_token,
)


@pytest.mark.parametrize(
    "value", ["2030-01-01T00:00:00Z", "2030-01-01T00:00:00+02:00", "24h", "90m", "-1m"]
)
def test_check_time_value_accepts(value):
    assert _stepca_token.check_time_value(value, "not_after") == value


@pytest.mark.parametrize("value", ["tomorrow", "2030-01-01", "2030-01-01T00:00:00", "1d"])
def test_check_time_value_rejects(value):
    with pytest.raises(_stepca_token.TokenError, match="not_after must be an RFC 3339 time"):
        _stepca_token.check_time_value(value, "not_after")


def test_normalize_fingerprint():
    plain = "ab" * 32
    assert _stepca.normalize_fingerprint(plain.upper()) == plain
    assert _stepca.normalize_fingerprint(":".join(["AB"] * 32)) == plain
    assert _stepca.normalize_fingerprint("sha256:" + plain) == plain
    with pytest.raises(_stepca.StepCAError, match="64 hex digits"):
        _stepca.normalize_fingerprint("ab" * 20)


@pytest.mark.parametrize(
    "url", ["http://ca.example.test", "ca.example.test:9000", "https://", "https://ca?x=1"]
)
def test_client_rejects_bad_urls(url):
    with pytest.raises(_stepca.StepCAError, match="ca_url"):
        _stepca.StepCAClient(url, root_fingerprint="ab" * 32)


def test_client_needs_a_root():
    with pytest.raises(_stepca.StepCAError, match="root certificate or its fingerprint"):
        _stepca.StepCAClient("https://ca.example.test")


def test_read_password_file_strips_newline(tmp_path):
    path = tmp_path / "pw"
    path.write_bytes(b"secret value\n")
    assert _stepca_modules.read_password_file(str(path)) == b"secret value"
    path.write_bytes(b"\n")
    with pytest.raises(_stepca.StepCAError, match="is empty"):
        _stepca_modules.read_password_file(str(path))


def test_prepare_takes_the_csr_sans_only_when_none_are_given():
    csr = make_csr(
        "John Doe",
        dns=("A.example.test",),
        ips=("192.0.2.1", "2001:DB8:0::1"),
        emails=("john@Example.test",),
        uris=("spiffe://example.test/x",),
    )
    client = _stepca.StepCAClient("https://127.0.0.1:1", root_fingerprint="ab" * 32)
    info = client.prepare(_stepca.SignRequest(csr=csr))
    assert info.subject == "John Doe"
    assert info.sans == [
        "a.example.test",
        "192.0.2.1",
        "2001:db8::1",
        "spiffe://example.test/x",
        "john@example.test",
    ]
    # An empty list authorises the common name alone: this CSR asks for more.
    with pytest.raises(_stepca.StepCAError, match="not authorised") as caught:
        client.prepare(_stepca.SignRequest(csr=csr, sans=[]))
    assert caught.value.kind == "san_not_allowed"


def test_prepare_empty_sans_authorise_the_common_name_alone():
    client = _stepca.StepCAClient("https://127.0.0.1:1", root_fingerprint="ab" * 32)
    bare = make_csr("web.example.test")
    for csr in (bare, make_csr("web.example.test", dns=("web.example.test",))):
        info = client.prepare(_stepca.SignRequest(csr=csr, sans=[]))
        assert (info.subject, info.sans) == ("web.example.test", ["web.example.test"])
    attacker = make_csr("web", dns=("bank.example.com",))
    with pytest.raises(_stepca.StepCAError) as caught:
        client.prepare(_stepca.SignRequest(csr=attacker, sans=[]))
    assert caught.value.kind == "san_not_allowed"
    assert "DNS:bank.example.com" in str(caught.value)


def _params(**overrides):
    base = {
        "csr": None,
        "csrs": None,
        "not_before": None,
        "not_after": None,
        "duration": None,
        "subject_alt_names": None,
        "common_name": None,
    }
    base.update(overrides)
    return base


def test_sign_requests_defaults_and_per_item_overrides():
    csr = make_csr("a.example.test", dns=("a.example.test",))
    requests = _stepca_modules.sign_items(
        _params(
            csrs=[
                csr,
                {"csr": csr, "duration": "2h"},
                {"csr": csr, "not_after": "2030-01-01T00:00:00Z", "not_before": "1m"},
                {"csr": csr, "subject_alt_names": ["x.example.test"], "common_name": "x"},
            ],
            duration="12h",
            not_before="5m",
        )
    )
    assert [(r.not_before, r.not_after, r.duration) for r in requests] == [
        ("5m", None, "12h"),
        ("5m", None, "2h"),
        ("1m", "2030-01-01T00:00:00Z", None),
        ("5m", None, "12h"),
    ]
    assert requests[3].sans == ["x.example.test"] and requests[3].subject == "x"
    assert requests[0].sans is None and requests[0].subject is None


def test_sign_requests_keep_an_empty_san_list():
    # [] authorises the common name alone; it must not become None (the CSR's SANs).
    csr = make_csr("web", dns=("bank.example.com",))
    (request,) = _stepca_modules.sign_items(_params(csrs=[{"csr": csr, "subject_alt_names": []}]))
    assert request.sans == []
    (request,) = _stepca_modules.sign_items(_params(csr=csr, subject_alt_names=[]))
    assert request.sans == []


def test_sign_requests_single_csr_takes_top_level_identity():
    csr = make_csr("a.example.test", dns=("a.example.test",))
    (request,) = _stepca_modules.sign_items(
        _params(csr=csr, subject_alt_names=["a.example.test"], common_name="a.example.test")
    )
    assert request.sans == ["a.example.test"] and request.subject == "a.example.test"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"csrs": []}, "csrs is empty"),
        ({"csrs": [{"pem": "x"}]}, r"csrs\[0\] must be a PEM CSR or a dict"),
        ({"csrs": [{"csr": "x", "ttl": "1h"}]}, r"csrs\[0\]: unknown keys ttl"),
        ({"csrs": ["x"], "common_name": "a"}, "set them per item"),
        ({"csrs": ["x"], "subject_alt_names": []}, "set them per item"),
        ({"csrs": ["x"], "duration": "soon"}, "duration must be"),
        ({"csrs": [{"csr": "x", "subject_alt_names": "a"}]}, "must be a list of strings"),
    ],
)
def test_sign_requests_rejects(overrides, message):
    with pytest.raises(_stepca.StepCAError, match=message):
        requests = _stepca_modules.sign_items(_params(**overrides))
        # A bad item is that item's error; the others are still requests.
        assert len(requests) == 1
        raise requests[0]


def test_run_sign_check_mode_validates_without_the_ca():
    base = {
        "ca_url": "https://127.0.0.1:1",
        "root": None,
        "root_fingerprint": "ab" * 32,
        "timeout": 1.0,
        "retries": 0,
        "provisioner": "clients",
        "provisioner_password": "pw",
        "provisioner_password_file": None,
        "workers": 4,
    }
    csr = make_csr("a.example.test", dns=("a.example.test",))
    result = _stepca_modules.run_sign({**base, **_params(csr=csr)}, check_mode=True)
    assert result == {"changed": True, "provisioner": "clients"}
    with pytest.raises(_stepca.StepCAError, match="not a PEM certificate signing request"):
        _stepca_modules.run_sign({**base, **_params(csr="garbage")}, check_mode=True)
    with pytest.raises(_stepca.StepCAError, match="workers must be between 1 and 32"):
        _stepca_modules.run_sign({**base, **_params(csr=csr), "workers": 100}, check_mode=True)
    with pytest.raises(_stepca.StepCAError, match="duration must be an RFC 3339"):
        _stepca_modules.run_sign({**base, **_params(csr=csr, duration="1d")}, check_mode=True)


def test_provisioner_key_repr_hides_the_key():
    key = _stepca.ProvisionerKey(name="p", kid="k", jwk={"d": "SECRET-D"})
    assert "SECRET-D" not in repr(key)
