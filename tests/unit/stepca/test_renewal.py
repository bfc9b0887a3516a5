# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The renewal program (module_utils/_renewal.py) against the real step-ca on loopback.

Certificates are signed by the session's CA with the client and server profiles, written to
a temporary folder as the role installs them (leaf + intermediate, key 0600), and renewed
through ``/1.0/renew`` (mTLS for clientAuth, the x5c renewal token for serverAuth only) and
``/1.0/rekey``. The refusals use answers made to be wrong (another key, other SANs, another
CA) and check that the certificate file is byte-identical afterwards.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import free_port
from cryptography.hazmat.primitives.asymmetric import ec
from stepca_server import pem

from ansible_collections.mtls.rollout.plugins.module_utils import _crypto, _renewal, _stepca


def _issue(
    step_ca, provisioner_keys, folder: Path, profile: str, name: str, duration: str = "10m", **kw
):
    """Sign a certificate for ``name`` and install it in ``folder``; return its settings."""
    key = ec.generate_private_key(ec.SECP256R1())
    spec = _crypto.CsrSpec.create({"common_name": name}, [f"DNS:{name}"], profile)
    csr = _crypto.csr_pem(_crypto.build_csr(key, spec))
    # Started three minutes ago, so that a renewal now ends later (step-ca renews for the
    # same lifetime, from now) without the test waiting.
    start = (datetime.now(timezone.utc) - timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    signed = step_ca.client().sign(
        provisioner_keys[profile],
        _stepca.SignRequest(csr=csr, sans=[name], not_before=start, duration=duration),
    )
    key_path, cert_path = folder / f"{name}.key", folder / f"{name}.crt"
    key_path.write_bytes(_crypto.serialize_private_key(key))
    key_path.chmod(0o600)
    cert_path.write_text(signed.fullchain)
    cert_path.chmod(0o640)
    bundle = folder / "ca-bundle.pem"
    bundle.write_text(step_ca.root_pem)
    values = {
        "name": name,
        "ca_url": step_ca.url,
        "trust_bundle": str(bundle),
        "cert_path": str(cert_path),
        "key_path": str(key_path),
        "common_name": name,
        "subject_alt_names": [f"DNS:{name}"],
        "renew_before": "0.5",
        "timeout": 10,
        "state_dir": str(folder / "state"),
    }
    values.update(kw)
    return _renewal.Settings.from_dict(values)


def _later(settings: _renewal.Settings, fraction: float) -> datetime:
    """The time when ``fraction`` of the installed certificate's lifetime has passed (the
    decision only; the CA sees the real time)."""
    leaf = _crypto.load_certificate(Path(settings.cert_path).read_bytes())
    start, end = _crypto.not_valid_before(leaf), _crypto.not_valid_after(leaf)
    return start + (end - start) * fraction


def _serial(path: str) -> int:
    return _crypto.load_certificate(Path(path).read_bytes()).serial_number


def test_not_due_changes_nothing(step_ca, provisioner_keys, tmp_path):
    settings = _issue(step_ca, provisioner_keys, tmp_path, "client", "fresh.example.test")
    before = Path(settings.cert_path).read_bytes()
    outcome = _renewal.run(settings)
    assert not outcome.renewed
    assert outcome.message.startswith("not due:")
    assert "renewal when less than 50% of its lifetime" in outcome.message
    assert Path(settings.cert_path).read_bytes() == before


def test_threshold_is_the_roles_rule(step_ca, provisioner_keys, tmp_path):
    """Just before and after the threshold, with the rule certificate_info applies."""
    settings = _issue(step_ca, provisioner_keys, tmp_path, "client", "edge.example.test")
    current = _renewal.read_current(settings)
    assert not _renewal.decide(settings, current, _later(settings, 0.45)).renew
    due = _renewal.decide(settings, current, _later(settings, 0.55))
    assert due.renew
    desired = _crypto.Desired(renew_before=_crypto.RenewBefore.parse("0.5"))
    verdict = _crypto.evaluate_certificate(current.leaf, desired, _later(settings, 0.55))
    assert due.reason == verdict.reason


def test_client_certificate_renews_over_mtls(step_ca, provisioner_keys, tmp_path):
    settings = _issue(
        step_ca,
        provisioner_keys,
        tmp_path,
        "client",
        "client.example.test",
        reload=[f"echo reloaded >> {tmp_path / 'reloads'}"],
    )
    old = _crypto.load_certificate(Path(settings.cert_path).read_bytes())
    key_before = Path(settings.key_path).read_bytes()
    outcome = _renewal.run(settings, now=_later(settings, 0.6))
    assert outcome.renewed, outcome.message
    certs = _crypto.load_certificates(Path(settings.cert_path).read_bytes())
    new = certs[0]
    assert new.serial_number != old.serial_number
    assert _crypto.not_valid_after(new) > _crypto.not_valid_after(old)
    assert _crypto.same_public_key(new.public_key(), old.public_key())
    assert _crypto.eku_names(new.extensions) == ["clientAuth"]
    assert pem(certs[1]).decode() == step_ca.intermediate_pem
    assert Path(settings.key_path).read_bytes() == key_before
    assert oct(os.stat(settings.cert_path).st_mode & 0o777) == "0o640"
    assert (tmp_path / "reloads").read_text() == "reloaded\n"
    assert outcome.serial == _crypto.serial_hex(new.serial_number)


def test_server_certificate_renews_with_a_renewal_token(step_ca, provisioner_keys, tmp_path):
    """A serverAuth-only certificate cannot be a TLS client certificate: the token path."""
    settings = _issue(step_ca, provisioner_keys, tmp_path, "server", "web.example.test")
    current = _renewal.read_current(settings)
    assert not _renewal.uses_mtls(current)
    old_serial = current.leaf.serial_number
    outcome = _renewal.run(settings, force=True)
    assert outcome.renewed, outcome.message
    new = _crypto.load_certificate(Path(settings.cert_path).read_bytes())
    assert new.serial_number != old_serial
    assert _crypto.eku_names(new.extensions) == ["serverAuth"]
    assert _crypto.same_public_key(new.public_key(), current.key)


def test_renewal_token_is_single_use(step_ca, provisioner_keys, tmp_path):
    settings = _issue(step_ca, provisioner_keys, tmp_path, "server", "once.example.test")
    current = _renewal.read_current(settings)
    token = _renewal.renewal_token(current, settings.ca_url)
    context = _renewal._context(settings, False)
    headers = {"Authorization": f"Bearer {token}"}
    _renewal._post(settings, "/1.0/renew", None, context, headers)
    with pytest.raises(_renewal.RenewalError, match=r"refused /1.0/renew \(401\)"):
        _renewal._post(settings, "/1.0/renew", None, context, headers)


def test_rekey_writes_the_new_key_with_its_certificate(step_ca, provisioner_keys, tmp_path):
    settings = _issue(
        step_ca, provisioner_keys, tmp_path, "client", "rekey.example.test", rekey=True
    )
    old_key = _crypto.load_private_key(Path(settings.key_path).read_bytes()).key
    outcome = _renewal.run(settings, force=True)
    assert outcome.renewed and "new key" in outcome.message
    new_key = _crypto.load_private_key(Path(settings.key_path).read_bytes()).key
    new = _crypto.load_certificate(Path(settings.cert_path).read_bytes())
    assert not _crypto.same_public_key(new_key, old_key)
    assert _crypto.same_public_key(new.public_key(), new_key)
    assert oct(os.stat(settings.key_path).st_mode & 0o777) == "0o600"
    assert not os.path.exists(settings.staged_key_path)


def test_rekey_of_a_server_certificate_is_refused(step_ca, provisioner_keys, tmp_path):
    settings = _issue(
        step_ca, provisioner_keys, tmp_path, "server", "nokey.example.test", rekey=True
    )
    before = Path(settings.cert_path).read_bytes()
    with pytest.raises(
        _renewal.RenewalError, match="rekey needs a certificate with the clientAuth"
    ):
        _renewal.run(settings, force=True)
    assert Path(settings.cert_path).read_bytes() == before


def test_interrupted_swap_is_finished(step_ca, provisioner_keys, tmp_path):
    """A crash after the certificate was written, before the key was renamed."""
    settings = _issue(
        step_ca, provisioner_keys, tmp_path, "client", "swap.example.test", rekey=True
    )
    current = _renewal.read_current(settings)
    answer = _renewal.request_renewal(settings, current)
    Path(settings.staged_key_path).write_bytes(_crypto.serialize_private_key(answer.key))
    Path(settings.cert_path).write_bytes(b"".join(pem(cert) for cert in answer.certs))
    outcome = _renewal.run(settings)
    assert not outcome.renewed
    assert "finished an interrupted key swap" in outcome.message
    key = _crypto.load_private_key(Path(settings.key_path).read_bytes()).key
    assert _crypto.same_public_key(key, answer.key)


def _refused(settings, answer, match):
    current = _renewal.read_current(settings)
    reasons = _renewal.verify_renewed(settings, current, answer)
    assert any(match in reason for reason in reasons), reasons


def test_answer_with_another_key_is_refused(step_ca, provisioner_keys, tmp_path):
    settings = _issue(step_ca, provisioner_keys, tmp_path, "client", "k.example.test")
    other = _issue(step_ca, provisioner_keys, tmp_path, "client", "k2.example.test")
    wrong = _renewal.Answer(_crypto.load_certificates(Path(other.cert_path).read_bytes()))
    _refused(settings, wrong, "holds another public key")


def test_answer_with_other_sans_is_refused(step_ca, provisioner_keys, tmp_path):
    settings = _issue(step_ca, provisioner_keys, tmp_path, "client", "sans.example.test")
    wider = dict(settings.as_dict(), subject_alt_names=["DNS:sans.example.test", "DNS:extra.test"])
    answer = _renewal.request_renewal(settings, _renewal.read_current(settings))
    _refused(_renewal.Settings.from_dict(wider), answer, "SANs differ: +DNS:extra.test")


def test_answer_not_chaining_is_refused(step_ca, provisioner_keys, tmp_path, test_ca):
    """A certificate right in every other way (key, names, usage, later end), from another CA."""
    from cryptography.x509.oid import ExtendedKeyUsageOID

    settings = _issue(step_ca, provisioner_keys, tmp_path, "client", "chain.example.test")
    current = _renewal.read_current(settings)
    forged = test_ca.issue(
        current.key.public_key(),
        "chain.example.test",
        ekus=[ExtendedKeyUsageOID.CLIENT_AUTH],
        not_before=datetime.now(timezone.utc) - timedelta(minutes=1),
    )
    answer = _renewal.Answer([forged, test_ca.intermediate])
    assert _renewal.verify_renewed(settings, current, answer) == [
        "does not chain to the trust bundle: no issuer for 'CN=Test Intermediate CA'"
        " (issuer 'CN=Test Root CA') in the chain or trust bundle"
    ]


def test_refused_answer_leaves_the_file_identical(step_ca, provisioner_keys, tmp_path, monkeypatch):
    settings = _issue(step_ca, provisioner_keys, tmp_path, "client", "same.example.test")
    other = _issue(step_ca, provisioner_keys, tmp_path, "client", "same2.example.test")
    before = Path(settings.cert_path).read_bytes()
    wrong = _renewal.Answer(_crypto.load_certificates(Path(other.cert_path).read_bytes()))
    monkeypatch.setattr(_renewal, "request_renewal", lambda *_args: wrong)
    with pytest.raises(_renewal.RenewalError, match="refused the CA's certificate") as caught:
        _renewal.run(settings, force=True)
    assert "holds another public key" in str(caught.value)
    assert "common name is 'same2.example.test'" in str(caught.value)
    assert Path(settings.cert_path).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_ca_down_fails_and_leaves_the_file_identical(step_ca, provisioner_keys, tmp_path):

    settings = _issue(step_ca, provisioner_keys, tmp_path, "client", "down.example.test")
    moved = dict(settings.as_dict(), ca_url=f"https://127.0.0.1:{free_port()}")
    before = Path(settings.cert_path).read_bytes()
    with pytest.raises(_renewal.RenewalError, match="unreachable: connection refused"):
        _renewal.run(_renewal.Settings.from_dict(moved), force=True)
    assert Path(settings.cert_path).read_bytes() == before


def test_failed_reload_is_retried_by_the_next_run(step_ca, provisioner_keys, tmp_path):
    flag = tmp_path / "config-ok"
    settings = _issue(
        step_ca,
        provisioner_keys,
        tmp_path,
        "client",
        "reload.example.test",
        reload=[f"test -e {flag}", f"echo reloaded >> {tmp_path / 'reloads'}"],
    )
    with pytest.raises(_renewal.RenewalError, match=r"renewed .* but reload command"):
        _renewal.run(settings, force=True)
    assert not (tmp_path / "reloads").exists()
    assert os.path.exists(settings.pending_path)
    flag.touch()
    outcome = _renewal.run(settings)
    assert not outcome.renewed and "an earlier reload failed, reloaded" in outcome.message
    assert (tmp_path / "reloads").read_text() == "reloaded\n"
    assert not os.path.exists(settings.pending_path)


def test_expired_or_foreign_certificate_needs_ansible(step_ca, provisioner_keys, tmp_path, test_ca):
    settings = _issue(step_ca, provisioner_keys, tmp_path, "client", "old.example.test")
    current = _renewal.read_current(settings)
    late = datetime.now(timezone.utc) + timedelta(hours=1)
    with pytest.raises(_renewal.RenewalError, match=r"expired .* run the certificate role"):
        _renewal.decide(settings, current, late)
    current.anchors = [test_ca.root]
    with pytest.raises(_renewal.RenewalError, match="does not chain to the trust bundle"):
        _renewal.decide(settings, current)


def test_main_reports_and_exits_non_zero(step_ca, provisioner_keys, tmp_path, capsys):
    settings = _issue(step_ca, provisioner_keys, tmp_path, "client", "main.example.test")
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(dict(settings.as_dict(), ca_url="https://127.0.0.1:1")))
    assert _renewal.main([str(path), "--force"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("main.example.test: renewal failed: the CA at https://127.0.0.1:1")
    path.write_text(json.dumps(settings.as_dict()))
    assert _renewal.main([str(path)]) == 0
    assert capsys.readouterr().out.startswith("main.example.test: not due:")
    assert _renewal.main([]) == 2


def test_settings_are_checked(tmp_path):
    with pytest.raises(_renewal.RenewalError, match="settings missing: ca_url"):
        _renewal.Settings.from_dict({"name": "x"})
    base = {
        "name": "x",
        "ca_url": "https://ca",
        "trust_bundle": "/b",
        "cert_path": "/c",
        "key_path": "/k",
        "common_name": "x",
    }
    with pytest.raises(_renewal.RenewalError, match="renew_before"):
        _renewal.Settings.from_dict(dict(base, renew_before="soon"))
    with pytest.raises(_renewal.RenewalError, match="unknown settings: colour"):
        _renewal.Settings.from_dict(dict(base, colour="red"))


def test_write_never_changes_the_mode_of_a_file_planted_in_its_place(tmp_path, monkeypatch):
    # The certificate's folder may belong to the service's user. Swapping the temporary
    # file for a symlink while it is written must not make the program (root) chmod or
    # chown the link's target.
    victim = tmp_path / "victim"
    victim.write_bytes(b"secret\n")
    victim.chmod(0o600)
    cert = tmp_path / "web.crt"
    cert.write_bytes(b"old\n")
    cert.chmod(0o644)
    real_fsync = os.fsync

    def plant(fd):
        real_fsync(fd)
        for temporary in tmp_path.glob(".web.crt.*"):
            temporary.unlink()
            temporary.symlink_to(victim)

    monkeypatch.setattr(_renewal.os, "fsync", plant)
    _renewal.write_like(str(cert), b"new\n", str(cert))
    assert victim.stat().st_mode & 0o7777 == 0o600
    assert victim.read_bytes() == b"secret\n"


@pytest.mark.parametrize(
    "answer",
    [
        {"crt": "x", "certChain": 5},
        {"crt": "x", "certChain": [{"pem": "x"}]},
        {"crt": 7},
        {"crt": "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"},
        {"crt": "plain garbage"},
    ],
)
def test_a_garbage_answer_is_a_renewal_error(answer):
    # A CA (or whatever answers at its address with a trusted certificate) that sends
    # garbage gets a one-line refusal in the journal, never a traceback.
    with pytest.raises(_renewal.RenewalError):
        _renewal.answer_certificates(answer)
