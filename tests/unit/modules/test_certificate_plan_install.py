# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""certificate_plan and certificate_install, in-process with real files, keys and a test CA.

Covers the certificate role's host side: key staging, the half-done key swap, the check of an
issued certificate before it is installed, check mode and bad input.
"""

from __future__ import annotations

import hashlib
import os
import stat
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from lock_helpers import LockHolder, on_first_wait
from mtls_testlib import pem

from ansible_collections.mtls.rollout.plugins.module_utils import (
    _certificate_install,
    _certificate_plan,
    _crypto,
    _item_lock,
)
from ansible_collections.mtls.rollout.plugins.modules import (
    certificate_info,
    certificate_install,
    certificate_plan,
)

YEAR = timedelta(days=3650)


def _snapshot(folder) -> dict[str, str]:
    """Every file under ``folder`` with its SHA-256 and mode."""
    result = {}
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
            result[os.path.relpath(path, folder)] = f"{digest} {oct(os.stat(path).st_mode)}"
    return result


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def host(tmp_path, test_ca):
    """A host folder, one server item, and helpers to plan, sign and install."""

    class Host:
        dir = tmp_path / "mtls"
        bundle = tmp_path / "mtls" / "ca-bundle.pem"
        ca = test_ca

        def item(self, **extra):
            item = {
                "name": "web",
                "common_name": "web.example.com",
                "subject_alt_names": ["DNS:web.example.com"],
                "key_path": str(self.dir / "web.key"),
                "cert_path": str(self.dir / "web.crt"),
            }
            item.update(extra)
            return item

        def plan_args(self, items=None):
            return {
                "items": items if items is not None else [self.item()],
                "trust_bundle": pem(test_ca.root).decode(),
                "trust_bundle_path": str(self.bundle),
                "certificate_dir": str(self.dir),
            }

        def sign(self, request, sans=None, ekus=None, public_key=None, common_name=None):
            """What a CA that does as asked issues for ``request``: leaf + intermediate PEM."""
            csr = x509.load_pem_x509_csr(request["csr"].encode())
            if sans is None:
                sans = [
                    _crypto.parse_san(f"DNS:{v}").general_name()
                    for v in request["subject_alt_names"]
                ]
                sans = sans or [x509.DNSName(request["common_name"])]
            if ekus is None:
                profile = _crypto.profile_of(csr.extensions)
                ekus = [
                    ExtendedKeyUsageOID.CLIENT_AUTH
                    if profile == "client"
                    else ExtendedKeyUsageOID.SERVER_AUTH
                ]
            cert = test_ca.issue(
                public_key or csr.public_key(),
                common_name=common_name or request["common_name"],
                sans=sans,
                ekus=ekus,
                lifetime=YEAR,
            )
            return (pem(cert) + pem(test_ca.intermediate)).decode()

        def install_args(self, certificate, **extra):
            return {
                "items": [dict(self.item(**extra), certificate=certificate)],
                "trust_bundle_path": str(self.bundle),
            }

    return Host()


def _deploy(run_module, host, **extra):
    """Plan, sign and install one item; returns the plan's item result."""
    plan = run_module(certificate_plan, host.plan_args([host.item(**extra)]))
    assert not plan.get("failed"), plan
    result = plan["items"][0]
    installed = run_module(
        certificate_install, host.install_args(host.sign(result["request"]), **extra)
    )
    assert installed["failed_items"] == [], installed
    return result


# ----------------------------------------------------------------------- plan


def test_plan_four_runs_then_installed_certificate_is_kept(run_module, host):
    args = host.plan_args()
    check = run_module(certificate_plan, args, check=True)
    assert check["changed"] is True and not host.dir.exists()  # check mode writes nothing
    assert "request" not in check["items"][0]
    first = run_module(certificate_plan, args)
    assert first["changed"] is True
    assert first["needs_signing"] == ["web"]
    assert "is missing" in first["items"][0]["reason"]
    assert _mode(host.dir / "web.key") == 0o600
    assert _mode(host.bundle) == 0o644
    assert host.bundle.read_bytes() == pem(host.ca.root)
    # The CSR is made from the key on the host and asks for exactly the item's names.
    request = first["items"][0]["request"]
    assert request["subject_alt_names"] == ["web.example.com"]
    csr = x509.load_pem_x509_csr(request["csr"].encode())
    key = _crypto.load_private_key((host.dir / "web.key").read_bytes()).key
    assert _crypto.same_public_key(csr.public_key(), key)
    # Nothing to sign yet: the next runs change nothing and keep the key.
    again = run_module(certificate_plan, args, check=True)
    assert again["changed"] is False and again["needs_signing"] == ["web"]
    after = run_module(certificate_plan, args)
    assert after["changed"] is False
    assert x509.load_pem_x509_csr(after["items"][0]["request"]["csr"].encode()).public_key() == (
        csr.public_key()
    )

    installed = run_module(
        certificate_install, host.install_args(host.sign(after["items"][0]["request"]))
    )
    assert installed["changed_items"] == ["web"] and installed["failed_items"] == []
    for check_mode in (True, False):
        done = run_module(certificate_plan, args, check=check_mode)
        assert done["changed"] is False, done
        assert done["needs_signing"] == [], done
        assert done["items"][0]["reason"] == "certificate is valid"


def test_plan_stages_a_key_that_must_change_and_keeps_the_working_pair(run_module, host):
    _deploy(run_module, host)
    before = _snapshot(host.dir)
    check = run_module(certificate_plan, host.plan_args([host.item(key_type="rsa")]), check=True)
    assert check["changed"] is True and _snapshot(host.dir) == before
    assert check["diff"]["after"]["items"]["web"]["staged_key"] == "RSA 2048"

    plan = run_module(certificate_plan, host.plan_args([host.item(key_type="rsa")]))
    item = plan["items"][0]
    assert item["staged"] is True and item["key_path"].endswith("web.key.next")
    assert "key is EC P-256, wanted RSA 2048" in item["reason"]
    assert _mode(host.dir / "web.key.next") == 0o600
    # The working key and certificate are untouched.
    after = _snapshot(host.dir)
    assert {k: v for k, v in after.items() if k != "web.key.next"} == before
    # A second run reuses the staged key (same CSR key) and changes nothing.
    again = run_module(certificate_plan, host.plan_args([host.item(key_type="rsa")]))
    assert again["changed"] is False and _snapshot(host.dir) == after
    staged = (host.dir / "web.key.next").read_bytes()

    installed = run_module(
        certificate_install,
        host.install_args(host.sign(again["items"][0]["request"]), key_type="rsa"),
    )
    assert installed["items"][0]["key_replaced"] is True
    assert (host.dir / "web.key").read_bytes() == staged
    assert not (host.dir / "web.key.next").exists()
    assert _mode(host.dir / "web.key") == 0o600
    done = run_module(certificate_plan, host.plan_args([host.item(key_type="rsa")]))
    assert done["changed"] is False and done["needs_signing"] == []


def test_plan_removes_a_staged_key_no_longer_wanted(run_module, host):
    _deploy(run_module, host)
    run_module(certificate_plan, host.plan_args([host.item(key_type="rsa")]))
    assert (host.dir / "web.key.next").exists()
    result = run_module(certificate_plan, host.plan_args())
    assert result["changed"] is True and result["needs_signing"] == []
    assert not (host.dir / "web.key.next").exists()


def test_a_crash_between_certificate_and_key_is_finished_by_the_next_plan(
    run_module, host, monkeypatch
):
    _deploy(run_module, host)
    plan = run_module(certificate_plan, host.plan_args([host.item(key_type="rsa")]))
    staged = (host.dir / "web.key.next").read_bytes()
    old_key = (host.dir / "web.key").read_bytes()
    certificate = host.sign(plan["items"][0]["request"])

    def crash(item):
        raise KeyboardInterrupt("the run died between the certificate and the key")

    monkeypatch.setattr(_certificate_install, "promote_staged_key", crash)
    with pytest.raises(KeyboardInterrupt):
        run_module(certificate_install, host.install_args(certificate, key_type="rsa"))
    monkeypatch.undo()
    # Half done: the new certificate beside the old key.
    assert (host.dir / "web.key").read_bytes() == old_key
    assert (host.dir / "web.crt").read_text() == certificate
    info = run_module(
        certificate_info,
        {"path": str(host.dir / "web.crt"), "privatekey_path": str(host.dir / "web.key")},
    )
    assert info["matches_key"] is False

    check = run_module(certificate_plan, host.plan_args([host.item(key_type="rsa")]), check=True)
    assert check["changed"] is True and check["items"][0]["swap_finished"] is True
    assert (host.dir / "web.key").read_bytes() == old_key  # check mode: only predicted
    healed = run_module(certificate_plan, host.plan_args([host.item(key_type="rsa")]))
    item = healed["items"][0]
    assert healed["changed"] is True and item["swap_finished"] is True
    assert item["needs_signing"] is False, item["reason"]
    assert (host.dir / "web.key").read_bytes() == staged
    assert not (host.dir / "web.key.next").exists()
    assert (host.dir / "web.crt").read_text() == certificate
    assert _mode(host.dir / "web.key") == 0o600
    assert (
        run_module(certificate_plan, host.plan_args([host.item(key_type="rsa")]))["changed"]
        is False
    )


def test_plan_fails_on_an_unreadable_key_and_touches_nothing(run_module, host):
    _deploy(run_module, host)
    (host.dir / "web.key").write_bytes(
        b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n"
    )
    before = _snapshot(host.dir)
    result = run_module(certificate_plan, host.plan_args([host.item(key_type="rsa")]))
    assert result["failed"] is True and "web.key" in result["msg"]
    assert "untouched" in result["msg"]
    assert _snapshot(host.dir) == before


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"subject_alt_names": ["DNS:ok.example.com", "bad:value"]}, "type prefix"),
        ({"subject_alt_names": ["DNS:-bad-.example.com"]}, "label"),
        ({"renew_before": "soon"}, "renew_before"),
        ({"common_name": "x" * 65}, "longer than 64"),
    ],
)
def test_bad_input_leaves_files_byte_identical(run_module, host, bad, message):
    _deploy(run_module, host)
    (host.dir / "web.key.next").write_bytes(b"left from an earlier run")
    before = _snapshot(host.dir)
    items = [
        host.item(key_type="rsa"),
        host.item(
            name="other", key_path=str(host.dir / "o.key"), cert_path=str(host.dir / "o.crt"), **bad
        ),
    ]
    args = host.plan_args(items)
    args["trust_bundle"] = pem(host.ca.intermediate).decode()  # would change the bundle
    result = run_module(certificate_plan, args)
    assert result["failed"] is True and message in result["msg"], result
    assert _snapshot(host.dir) == before


def test_duplicate_paths_are_refused(run_module, host):
    items = [host.item(), host.item(name="two")]
    result = run_module(certificate_plan, host.plan_args(items))
    assert result["failed"] is True and "also used by item web" in result["msg"]
    assert not host.dir.exists()


@pytest.mark.parametrize("deployed", [True, False])
@pytest.mark.parametrize("path", ["key_path", "cert_path"])
def test_an_item_path_that_is_the_trust_bundle_is_refused_and_the_key_survives(
    run_module, host, path, deployed
):
    """The trust bundle and the item would overwrite each other on every run: the key
    replaced by public certificates (mode 0644), or a certificate re-signed every run."""
    if deployed:
        _deploy(run_module, host)
    before = _snapshot(host.dir)
    args = host.plan_args([host.item(**{path: str(host.bundle)})])
    args["trust_bundle"] = (pem(host.ca.root) + pem(host.ca.intermediate)).decode()
    for check_mode in (True, False):
        result = run_module(certificate_plan, args, check=check_mode)
        assert result.get("failed") is True, result
        assert f"item web: {host.bundle} is also the trust bundle" in result["msg"], result
    assert _snapshot(host.dir) == before


def test_plan_reports_a_missing_library_distinctly(run_module, host, monkeypatch):
    monkeypatch.setattr(_crypto, "HAS_CRYPTOGRAPHY", False)
    result = run_module(certificate_plan, host.plan_args())
    assert result["failed"] is True
    assert result["missing_library"] == "python3-cryptography"
    assert not host.dir.exists()


def test_plan_re_signs_when_the_sans_change(run_module, host):
    _deploy(run_module, host)
    item = host.item(subject_alt_names=["DNS:web.example.com", "DNS:new.example.com"])
    result = run_module(certificate_plan, host.plan_args([item]))
    assert result["needs_signing"] == ["web"]
    assert "+DNS:new.example.com" in result["items"][0]["reason"]
    assert result["items"][0]["request"]["subject_alt_names"] == [
        "new.example.com",
        "web.example.com",
    ]


def test_empty_sans_ask_the_token_for_the_common_name_only(run_module, host):
    item = host.item(
        name="john",
        common_name="John Doe",
        subject_alt_names=[],
        profile="client",
        key_path=str(host.dir / "john.key"),
        cert_path=str(host.dir / "john.crt"),
    )
    plan = run_module(certificate_plan, host.plan_args([item]))
    request = plan["items"][0]["request"]
    assert request["subject_alt_names"] == [] and request["common_name"] == "John Doe"
    csr = x509.load_pem_x509_csr(request["csr"].encode())
    assert _crypto.sans_of(csr.extensions) == ()


# ------------------------------------------------------------------- install


def _refused(run_module, host, certificate, **extra):
    before = _snapshot(host.dir)
    result = run_module(certificate_install, host.install_args(certificate, **extra))
    assert result["changed"] is False and result["changed_items"] == []
    assert [f["name"] for f in result["failed_items"]] == ["web"]
    assert _snapshot(host.dir) == before
    return result["failed_items"][0]["msg"]


def test_install_refuses_a_certificate_with_an_extra_san(run_module, host):
    _deploy(run_module, host)
    plan = run_module(certificate_plan, host.plan_args([host.item(key_type="rsa")]))
    certificate = host.sign(
        plan["items"][0]["request"],
        sans=[x509.DNSName("web.example.com"), x509.DNSName("bank.example.com")],
    )
    message = _refused(run_module, host, certificate, key_type="rsa")
    assert "SANs differ from the item: -DNS:bank.example.com" in message
    assert (host.dir / "web.key.next").exists()  # the staged key waits for a good certificate


def test_install_refuses_the_wrong_extended_key_usage(run_module, host):
    _deploy(run_module, host)
    plan = run_module(certificate_plan, host.plan_args([host.item(renew_before="3649d")]))
    request = plan["items"][0]["request"]
    for ekus in (
        [ExtendedKeyUsageOID.CLIENT_AUTH],
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        [],
    ):
        message = _refused(run_module, host, host.sign(request, ekus=ekus))
        assert "extended key usage is" in message and "wanted server" in message


def test_install_refuses_a_certificate_for_another_key(run_module, host):
    _deploy(run_module, host)
    plan = run_module(certificate_plan, host.plan_args([host.item(renew_before="3649d")]))
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    message = _refused(run_module, host, host.sign(plan["items"][0]["request"], public_key=other))
    assert "not the key it would be installed beside" in message


def test_install_refuses_another_subject_and_another_ca(run_module, host, other_ca):
    _deploy(run_module, host)
    plan = run_module(certificate_plan, host.plan_args([host.item(renew_before="3649d")]))
    request = plan["items"][0]["request"]
    message = _refused(run_module, host, host.sign(request, common_name="bank.example.com"))
    assert "subject is 'CN=bank.example.com'" in message
    csr = x509.load_pem_x509_csr(request["csr"].encode())
    foreign = other_ca.issue(csr.public_key(), common_name="web.example.com", lifetime=YEAR)
    message = _refused(run_module, host, (pem(foreign) + pem(other_ca.intermediate)).decode())
    assert "does not chain to the trust bundle" in message


def test_one_refused_item_does_not_stop_the_others(run_module, host):
    web = host.item()
    api = host.item(
        name="api",
        common_name="api.example.com",
        subject_alt_names=[],
        key_path=str(host.dir / "api.key"),
        cert_path=str(host.dir / "api.crt"),
    )
    plan = run_module(certificate_plan, host.plan_args([web, api]))
    by_name = {item["name"]: item for item in plan["items"]}
    good = host.sign(by_name["api"]["request"])
    bad = host.sign(by_name["web"]["request"], sans=[x509.DNSName("bank.example.com")])
    result = run_module(
        certificate_install,
        {
            "items": [dict(web, certificate=bad), dict(api, certificate=good)],
            "trust_bundle_path": str(host.bundle),
        },
    )
    assert result["changed_items"] == ["api"]
    assert [f["name"] for f in result["failed_items"]] == ["web"]
    assert (host.dir / "api.crt").read_text() == good
    assert not (host.dir / "web.crt").exists()
    again = run_module(certificate_plan, host.plan_args([web, api]))
    assert again["needs_signing"] == ["web"]


def test_install_check_mode_writes_nothing_and_same_certificate_is_not_a_change(run_module, host):
    plan = run_module(certificate_plan, host.plan_args([host.item()]))
    certificate = host.sign(plan["items"][0]["request"])
    before = _snapshot(host.dir)
    check = run_module(certificate_install, host.install_args(certificate), check=True)
    assert check["changed"] is True and _snapshot(host.dir) == before
    assert run_module(certificate_install, host.install_args(certificate))["changed"] is True
    assert _mode(host.dir / "web.crt") == 0o644
    assert run_module(certificate_install, host.install_args(certificate))["changed"] is False


def test_a_person_with_no_sans_is_installed_and_then_valid(run_module, host):
    """step-ca copies a CN such as ``John Doe`` into the SANs (``DNS:John Doe``)."""
    item = host.item(
        name="john",
        common_name="John Doe",
        subject_alt_names=[],
        profile="client",
        key_path=str(host.dir / "john.key"),
        cert_path=str(host.dir / "john.crt"),
    )
    plan = run_module(certificate_plan, host.plan_args([item]))
    request = plan["items"][0]["request"]
    certificate = host.sign(request, sans=[x509.DNSName("John Doe")])
    installed = run_module(
        certificate_install,
        {"items": [dict(item, certificate=certificate)], "trust_bundle_path": str(host.bundle)},
    )
    assert installed["failed_items"] == [] and installed["changed_items"] == ["john"]
    again = run_module(certificate_plan, host.plan_args([item]))
    assert again["changed"] is False and again["needs_signing"] == [], again


def test_no_sans_authorise_the_common_name_only_not_what_the_csr_adds(run_module, host):
    """The attacker case of issue 9: an item without SANs whose certificate carries more."""
    item = host.item(subject_alt_names=[], common_name="web")
    plan = run_module(certificate_plan, host.plan_args([item]))
    request = plan["items"][0]["request"]
    assert request["subject_alt_names"] == []
    certificate = host.sign(request, sans=[x509.DNSName("web"), x509.DNSName("bank.example.com")])
    result = run_module(
        certificate_install,
        {"items": [dict(item, certificate=certificate)], "trust_bundle_path": str(host.bundle)},
    )
    assert result["changed_items"] == []
    assert "-DNS:bank.example.com" in result["failed_items"][0]["msg"]
    assert not (host.dir / "web.crt").exists()


def test_certificate_sans_is_the_one_rule(host):
    item = _certificate_plan.parse_items(
        [
            dict(
                host.item(),
                key_type="ec",
                key_curve="P-256",
                key_size=2048,
                profile="server",
                renew_before="0.33",
            )
        ]
    )[0]
    assert item.expected_sans == _crypto.certificate_sans("web.example.com", item.sans)
    assert item.expected_sans == (_crypto.San("DNS", "web.example.com"),)


# ------------------------------------------------------------ root rotation (anchors)


def test_during_a_root_rotation_both_roots_are_trusted_and_the_old_root_s_certificates_re_signed(
    run_module, host, other_ca
):
    """Trust bundle: the old root and the new one; anchors: the CA's (new) root alone."""
    _deploy(run_module, host)  # issued under test_ca, the "old" root
    bundle = (pem(host.ca.root) + pem(other_ca.root)).decode()
    args = dict(host.plan_args(), trust_bundle=bundle)
    # Prepared: the CA still signs under the old root; the bundle gains the new one only.
    prepared = run_module(certificate_plan, dict(args, anchors=pem(host.ca.root).decode()))
    assert prepared["trust_bundle_changed"] is True and prepared["needs_signing"] == []
    assert host.bundle.read_text() == bundle
    # Switched: the CA's root is the new one, so the certificate is re-signed; the bundle
    # (the same two roots) does not change.
    switched = run_module(certificate_plan, dict(args, anchors=pem(other_ca.root).decode()))
    assert switched["trust_bundle_changed"] is False
    assert switched["needs_signing"] == ["web"]
    assert "does not chain to the trust bundle" in switched["items"][0]["reason"]
    request = switched["items"][0]["request"]
    csr = x509.load_pem_x509_csr(request["csr"].encode())
    issued = other_ca.issue(
        csr.public_key(),
        common_name="web.example.com",
        sans=[x509.DNSName("web.example.com")],
        ekus=[ExtendedKeyUsageOID.SERVER_AUTH],
        lifetime=YEAR,
    )
    installed = run_module(
        certificate_install,
        host.install_args((pem(issued) + pem(other_ca.intermediate)).decode()),
    )
    assert installed["changed_items"] == ["web"], installed
    done = run_module(certificate_plan, dict(args, anchors=pem(other_ca.root).decode()))
    assert done["needs_signing"] == [] and done["changed"] is False


@pytest.mark.parametrize("path", ["key_path", "cert_path"])
def test_an_absent_item_never_removes_the_trust_bundle_or_another_item_s_key(
    run_module, host, path
):
    """state: absent removes the item's key, staged key, certificate and CSR: none of them
    may be the trust bundle or a file of another item."""
    _deploy(run_module, host)
    before = _snapshot(host.dir)
    paths = {"key_path": str(host.dir / "gone.key"), "cert_path": str(host.dir / "gone.crt")}
    gone = host.item(name="gone", state="absent", **dict(paths, **{path: str(host.bundle)}))
    result = run_module(certificate_plan, host.plan_args([host.item(), gone]))
    assert result.get("failed") is True, result
    assert f"item gone: {host.bundle} is also the trust bundle" in result["msg"], result
    old = host.item(
        name="old",
        state="absent",
        cert_path=str(host.dir / "web.key.crt"),
        key_path=str(host.dir / "old.key"),
    )
    # old's CSR would be <dir>/web.key.csr: make web's key live there.
    web = host.item(key_path=str(host.dir / "web.key.csr"))
    result = run_module(certificate_plan, host.plan_args([web, old]))
    assert result.get("failed") is True and "also used by item web" in result["msg"], result
    assert _snapshot(host.dir) == before


# ------------------------------------------------------------------ the certificate lock


def test_plan_waits_for_the_certificate_lock_then_proceeds(run_module, host, monkeypatch):
    _deploy(run_module, host)
    with LockHolder(host.dir) as holder:
        waits = on_first_wait(monkeypatch, holder.release)
        result = run_module(certificate_plan, host.plan_args([host.item(key_type="rsa")]))
    assert waits, "the plan did not wait for the lock"
    assert result["changed"] is True and result["needs_signing"] == ["web"], result
    assert (host.dir / "web.key.next").exists()


@pytest.mark.parametrize("check_mode", [True, False])
def test_plan_fails_clearly_while_the_lock_stays_held_and_changes_nothing(
    run_module, host, monkeypatch, check_mode
):
    _deploy(run_module, host)
    (host.dir / "web.key.next").write_bytes(b"staged by someone who holds the lock")
    before = _snapshot(host.dir)
    monkeypatch.setattr(_item_lock, "LOCK_WAIT", 0.3)
    with LockHolder(host.dir) as holder:
        result = run_module(certificate_plan, host.plan_args(), check=check_mode)
    assert result["failed"] is True, result
    message = result["msg"]
    assert message.startswith(
        f"the certificate lock on {host.dir} (an flock on that folder) is still held by"
        f" process {holder.pid} ("
    ), message
    assert message.endswith(
        " after 0.3 s: a renewal timer (systemctl list-units 'mtls-renew-*') or another run of"
        " the certificate role is changing certificates there; none of this host's"
        " certificates was changed. Run again once it has finished."
    ), message
    assert _snapshot(host.dir) == before


def test_install_waits_for_the_certificate_lock_then_installs(run_module, host, monkeypatch):
    plan = run_module(certificate_plan, host.plan_args())
    certificate = host.sign(plan["items"][0]["request"])
    with LockHolder(host.dir) as holder:
        waits = on_first_wait(monkeypatch, holder.release)
        result = run_module(certificate_install, host.install_args(certificate))
    assert waits, "the install did not wait for the lock"
    assert result["failed_items"] == [] and result["changed_items"] == ["web"], result
    assert (host.dir / "web.crt").read_text() == certificate


def test_install_refuses_the_items_of_a_locked_folder_and_installs_the_others(
    run_module, host, monkeypatch, tmp_path
):
    other = tmp_path / "other"
    other.mkdir()
    items = [
        host.item(),
        host.item(
            name="api", key_path=str(host.dir / "api.key"), cert_path=str(host.dir / "a.crt")
        ),
        host.item(name="db", key_path=str(other / "db.key"), cert_path=str(other / "db.crt")),
    ]
    plan = run_module(certificate_plan, host.plan_args(items))
    requests = {item["name"]: item["request"] for item in plan["items"]}
    before = _snapshot(host.dir)
    monkeypatch.setattr(_item_lock, "LOCK_WAIT", 0.3)
    holds = []
    hold = _item_lock.hold

    def counted(folders, wait):
        holds.append(list(folders))
        return hold(folders, wait)

    monkeypatch.setattr(_item_lock, "hold", counted)
    args = {
        "items": [dict(item, certificate=host.sign(requests[item["name"]])) for item in items],
        "trust_bundle_path": str(host.bundle),
    }
    with LockHolder(host.dir) as holder:
        result = run_module(certificate_install, args)
    failed = {entry["name"]: entry["msg"] for entry in result["failed_items"]}
    assert sorted(failed) == ["api", "web"] and result["changed_items"] == ["db"], result
    for name, message in failed.items():
        assert message.startswith(f"{name}: the certificate lock on {host.dir} ("), message
        assert f"still held by process {holder.pid}" in message
        assert "this certificate was not installed" in message
    # The busy folder was waited for once, not once per item.
    assert holds == [[str(host.dir)], [str(other)]]
    assert _snapshot(host.dir) == before
    assert (other / "db.crt").exists()


def test_install_after_the_timer_rekeyed_says_the_key_changed_since_the_plan(run_module, host):
    _deploy(run_module, host, profile="client")
    plan = run_module(
        certificate_plan, host.plan_args([host.item(profile="client", renew_before="3649d")])
    )
    certificate = host.sign(plan["items"][0]["request"])
    # The timer's rekey after the plan: a new key, and a certificate for it.
    new_key = ec.generate_private_key(ec.SECP256R1())
    (host.dir / "web.key").write_bytes(_crypto.serialize_private_key(new_key))
    (host.dir / "web.crt").write_text(
        host.sign(plan["items"][0]["request"], public_key=new_key.public_key())
    )
    message = _refused(run_module, host, certificate, profile="client")
    assert message == (
        "web: the issued certificate was refused: the certificate's public key is not the key"
        f" it would be installed beside ({host.dir / 'web.key'}): that key changed since the"
        " plan made the CSR (the renewal timer may have rekeyed it), or the CA signed another"
        " key; run the play again to sign for the key on the host now"
    )
    again = run_module(certificate_plan, host.plan_args([host.item(profile="client")]))
    assert again["needs_signing"] == [], again
