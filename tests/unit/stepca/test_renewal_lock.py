# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The renewal timer against the certificate role's plan and install, with the real step-ca.

The timer's program runs in a process of its own (``lock_helpers.RenewalChild``), stopped at
the step where the old code let the others in; the plan and install run in this process, as
modules. Each interleaving of issue 10 ("F5") is played in a fixed order and must leave a key
and a certificate that belong together, and a ``<key>.next`` the timer did not make as it was.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from lock_helpers import BOUND, LockHolder, RenewalChild, on_first_wait
from test_renewal import _issue

from ansible_collections.mtls.rollout.plugins.module_utils import (
    _crypto,
    _item_lock,
    _renewal,
    _stepca,
)
from ansible_collections.mtls.rollout.plugins.modules import certificate_install, certificate_plan


def _settings_file(settings: _renewal.Settings) -> Path:
    path = Path(settings.key_path).parent / f"{settings.name}.json"
    path.write_text(json.dumps(settings.as_dict()))
    return path


def _belong(settings: _renewal.Settings) -> bool:
    """Whether the key and the certificate on disk belong together."""
    key = _crypto.load_private_key(Path(settings.key_path).read_bytes()).key
    leaf = _crypto.load_certificate(Path(settings.cert_path).read_bytes())
    return _crypto.same_public_key(leaf.public_key(), key)


def _item(settings: _renewal.Settings, **extra) -> dict:
    item = {
        "name": settings.name,
        "common_name": settings.common_name,
        "subject_alt_names": list(settings.subject_alt_names),
        "profile": "client",
        "key_path": settings.key_path,
        "cert_path": settings.cert_path,
        "renew_before": "0.1",
    }
    item.update(extra)
    return item


def _plan(run_module, step_ca, settings, **extra) -> dict:
    return run_module(
        certificate_plan,
        {
            "items": [_item(settings, **extra)],
            "trust_bundle": step_ca.root_pem,
            "trust_bundle_path": settings.trust_bundle,
            "certificate_dir": str(Path(settings.key_path).parent),
        },
    )


def _sign(step_ca, provisioner_keys, request: dict) -> str:
    """What the role's signing step gets for the plan's request (started three minutes ago,
    so that a renewal right after it still ends later)."""
    start = (datetime.now(timezone.utc) - timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    signed = step_ca.client().sign(
        provisioner_keys["client"],
        _stepca.SignRequest(
            csr=request["csr"],
            sans=request["subject_alt_names"],
            not_before=start,
            duration="10m",
        ),
    )
    return signed.fullchain


def _install(run_module, settings, certificate: str, **extra) -> dict:
    return run_module(
        certificate_install,
        {
            "items": [dict(_item(settings, **extra), certificate=certificate)],
            "trust_bundle_path": settings.trust_bundle,
        },
    )


# ---------------------------------------------------------------- waiting for the lock


def test_the_timer_waits_for_the_lock_then_renews(step_ca, provisioner_keys, tmp_path, monkeypatch):
    settings = _issue(step_ca, provisioner_keys, tmp_path, "client", "wait.example.test")
    before = _renewal.read_current(settings).leaf.serial_number
    with LockHolder(tmp_path) as holder:
        waits = on_first_wait(monkeypatch, holder.release)
        outcome = _renewal.run(settings, force=True, lock_wait=30)
    assert waits, "the timer did not wait for the lock"
    assert outcome.renewed, outcome.message
    assert _renewal.read_current(settings).leaf.serial_number != before


def test_the_timer_gives_up_after_the_bound_and_changes_nothing(
    step_ca, provisioner_keys, tmp_path, monkeypatch, capsys
):
    settings = _issue(
        step_ca, provisioner_keys, tmp_path, "client", "busy.example.test", rekey=True
    )
    files = {path: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()}
    with LockHolder(tmp_path) as holder:
        started = time.monotonic()
        with pytest.raises(_renewal.RenewalError) as caught:
            _renewal.run(settings, force=True, lock_wait=0.3)
        assert time.monotonic() - started >= 0.3
        message = str(caught.value)
        assert message.startswith(
            f"the certificate lock on {tmp_path} (an flock on that folder) is still held by"
            f" process {holder.pid} ("
        ), message
        assert message.endswith(
            " after 0.3 s: the certificate role or another renewal is changing certificates"
            f" there; {settings.cert_path} is unchanged, and the next run tries again"
        ), message
        # The program's own bound is the collection's one wait (here made short).
        monkeypatch.setattr(_item_lock, "LOCK_WAIT", 0.23)
        path = _settings_file(settings)
        files[path] = path.read_bytes()
        assert _renewal.main([str(path), "--force"]) == 1
    journal = capsys.readouterr().err
    assert journal.startswith("busy.example.test: renewal failed: the certificate lock on"), journal
    assert "after 0.23 s" in journal
    assert {path: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()} == files


class _TricklingCa:
    """A TLS server with a certificate the trust bundle accepts, which answers a request one
    byte at a time: a CA (or a proxy before it) that is slow but never silent for a whole
    timeout."""

    def __init__(self, step_ca, provisioner_keys, folder: Path) -> None:
        folder.mkdir()
        served = _issue(step_ca, provisioner_keys, folder, "server", "localhost")
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(served.cert_path, served.key_path)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.answering = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        connection, _address = self.listener.accept()
        with self.context.wrap_socket(connection, server_side=True) as tls:
            tls.recv(65536)
            self.answering.set()
            for byte in b"HTTP/1.1 503 Service Unavailable\r\n" * 100:
                if self.stop.wait(0.2):
                    break
                tls.sendall(bytes([byte]))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=BOUND)
        self.listener.close()


def test_a_slow_ca_answer_holds_no_lock(step_ca, provisioner_keys, tmp_path):
    # The old program held the lock through its CA request, and a CA that answers a byte at a
    # time (each within the socket timeout) held the certificate role beyond its wait.
    settings = _issue(step_ca, provisioner_keys, tmp_path, "client", "slow.example.test")
    issued = Path(settings.cert_path).read_bytes()
    slow_ca = _TricklingCa(step_ca, provisioner_keys, tmp_path / "ca")
    slow = _renewal.Settings.from_dict(
        dict(settings.as_dict(), ca_url=f"https://localhost:{slow_ca.port}", timeout=2)
    )
    failures = []

    def renew() -> None:
        try:
            _renewal.run(slow, force=True)
        except _renewal.RenewalError as exc:
            failures.append(str(exc))

    timer = threading.Thread(target=renew)
    timer.start()
    try:
        assert slow_ca.answering.wait(BOUND), "the renewal never asked the CA"
        # While the CA answers, the folder's lock is free at once.
        with _item_lock.hold([str(tmp_path)], 0):
            pass
    finally:
        slow_ca.close()
        timer.join(BOUND)
    # The renewal failed on the CA's answer, not on the lock, and changed nothing.
    assert len(failures) == 1 and "certificate lock" not in failures[0], failures
    assert Path(settings.cert_path).read_bytes() == issued


def test_a_certificate_the_role_changed_during_the_ca_request_is_not_overwritten(
    step_ca, provisioner_keys, tmp_path, monkeypatch
):
    # The CA is asked without the lock; the certificate role may install a certificate (or
    # stage a key) meanwhile. What the CA sends for the old state is then not written.
    settings = _issue(step_ca, provisioner_keys, tmp_path, "client", "race.example.test")
    request = _renewal.request_renewal
    installed_by_the_role = b""

    def meanwhile(*args, **kwargs):
        nonlocal installed_by_the_role
        answer = request(*args, **kwargs)
        cert = Path(settings.cert_path)
        installed_by_the_role = cert.read_bytes() + b"\n"  # the same chain, other bytes
        cert.write_bytes(installed_by_the_role)
        return answer

    monkeypatch.setattr(_renewal, "request_renewal", meanwhile)
    with pytest.raises(_renewal.RenewalError) as caught:
        _renewal.run(settings, force=True)
    assert "changed while the CA was asked" in str(caught.value)
    assert Path(settings.cert_path).read_bytes() == installed_by_the_role
    assert not Path(settings.pending_path).exists()


def test_a_renewal_killed_before_its_reload_is_reloaded_by_the_next_run(
    step_ca, provisioner_keys, tmp_path, monkeypatch
):
    # The reload is marked pending before the certificate is written: a run that dies in
    # between (kill -9, power) leaves a new certificate that the next run reloads, though it
    # is not due.
    reloads = tmp_path / "reloads"
    settings = _issue(
        step_ca,
        provisioner_keys,
        tmp_path,
        "client",
        "killed.example.test",
        reload=[f"echo reloaded >> {reloads}"],
    )
    before = _renewal.read_current(settings).leaf.serial_number

    def killed(_settings):
        raise SystemExit("killed between the write and the reload")

    monkeypatch.setattr(_renewal, "reload_services", killed)
    with pytest.raises(SystemExit):
        _renewal.run(settings, force=True)
    monkeypatch.undo()
    assert _renewal.read_current(settings).leaf.serial_number != before
    assert not reloads.exists()
    outcome = _renewal.run(settings)
    assert not outcome.renewed
    assert outcome.message.endswith("; an earlier reload failed, reloaded"), outcome.message
    assert outcome.reloaded == [f"echo reloaded >> {reloads}"]
    assert reloads.read_text() == "reloaded\n"
    assert not Path(settings.pending_path).exists()


# ---------------------------------------------------------- a .next the timer did not make


@pytest.mark.parametrize("staged", ["key", "garbage"])
def test_rekey_beside_a_foreign_staged_key_renews_with_the_current_key(
    step_ca, provisioner_keys, tmp_path, staged
):
    """A key change the role staged and has not installed yet, or what a crash left."""
    settings = _issue(
        step_ca, provisioner_keys, tmp_path, "client", "foreign.example.test", rekey=True
    )
    next_path = Path(settings.staged_key_path)
    if staged == "key":
        content = _crypto.serialize_private_key(ec.generate_private_key(ec.SECP384R1()))
    else:
        content = b"half a key from a run that died\n"
    next_path.write_bytes(content)
    next_path.chmod(0o600)
    key_before = Path(settings.key_path).read_bytes()
    serial_before = _renewal.read_current(settings).leaf.serial_number
    outcome = _renewal.run(settings, force=True)
    assert outcome.renewed, outcome.message
    assert ", new key" not in outcome.message
    assert outcome.message.endswith(
        f"; kept the key without rekey: {next_path} is not this certificate's key (a key"
        " change the certificate role staged and has not installed yet, or left by an"
        " interrupted run), so it was left as it is; the role's next run installs or removes it"
    ), outcome.message
    assert next_path.read_bytes() == content
    assert next_path.stat().st_mode & 0o777 == 0o600
    assert Path(settings.key_path).read_bytes() == key_before
    assert _renewal.read_current(settings).leaf.serial_number != serial_before
    assert _belong(settings)


# ------------------------------------------------------------------- the interleavings


def test_a_plan_during_a_rekey_leaves_the_timer_s_staged_key(
    step_ca, provisioner_keys, tmp_path, run_module, monkeypatch
):
    """(a) The timer has written its new key as <key>.next and not yet its certificate when
    the plan runs: the old plan removed that .next as "no longer wanted", the timer's rename
    then failed, and its certificate sat beside the old key."""
    settings = _issue(step_ca, provisioner_keys, tmp_path, "client", "a.example.test", rekey=True)
    timer = RenewalChild(_settings_file(settings), "before-certificate")
    timer.start()
    timer.expect("paused")
    staged = Path(settings.staged_key_path).read_bytes()
    monkeypatch.setattr(_item_lock, "LOCK_WAIT", 0.3)
    plan = _plan(run_module, step_ca, settings)
    assert Path(settings.staged_key_path).read_bytes() == staged
    assert plan.get("failed") is True and "the certificate lock on" in plan["msg"], plan
    timer.go()
    code, said = timer.finish()
    assert code == 0 and ", new key" in said, said
    assert Path(settings.key_path).read_bytes() == staged
    assert not Path(settings.staged_key_path).exists()
    assert _belong(settings)
    again = _plan(run_module, step_ca, settings)
    assert not again.get("failed") and again["needs_signing"] == [], again


def test_an_install_during_a_rekey_never_leaves_a_certificate_beside_another_key(
    step_ca, provisioner_keys, tmp_path, run_module, monkeypatch
):
    """(b) The install has checked its certificate against the key and is about to write it
    when the timer rekeys: with the old code the timer wrote its key and certificate, the
    install wrote its certificate over the timer's, and the timer renamed its key beside it."""
    from ansible_collections.mtls.rollout.plugins.module_utils import _io

    settings = _issue(step_ca, provisioner_keys, tmp_path, "client", "b.example.test", rekey=True)
    plan = _plan(run_module, step_ca, settings, renew_before="0.99")
    certificate = _sign(step_ca, provisioner_keys, plan["items"][0]["request"])
    timer = RenewalChild(_settings_file(settings), "before-rename")
    seen = []
    write_file = _io.write_file

    def timer_starts_now(module, path, *args, **kwargs):
        if path == settings.cert_path:
            timer.start()
            seen.append(timer.expect("waiting", "paused"))
        return write_file(module, path, *args, **kwargs)

    monkeypatch.setattr(_io, "write_file", timer_starts_now)
    installed = _install(run_module, settings, certificate, renew_before="0.99")
    assert installed["changed_items"] == [settings.name], installed
    assert seen == ["waiting"], "the timer did not wait for the install's lock"
    timer.expect("paused")
    timer.go()
    code, said = timer.finish()
    assert code == 0 and ", new key" in said, said
    assert _belong(settings)
    assert not Path(settings.staged_key_path).exists()


def test_an_install_after_a_rekey_waits_for_it_then_says_the_key_changed(
    step_ca, provisioner_keys, tmp_path, run_module, monkeypatch
):
    """(b) the other way round: the timer rekeys after the plan made its CSR, and holds the
    lock when the install comes. The install waits, then refuses the certificate for the old
    key with a reason that says what to do; the next run signs for the new key."""
    settings = _issue(step_ca, provisioner_keys, tmp_path, "client", "b2.example.test", rekey=True)
    plan = _plan(run_module, step_ca, settings, renew_before="0.99")
    certificate = _sign(step_ca, provisioner_keys, plan["items"][0]["request"])
    timer = RenewalChild(_settings_file(settings), "before-rename")
    timer.start()
    timer.expect("paused")
    ended = []

    def timer_finishes():
        timer.go()
        ended.append(timer.finish())

    waits = on_first_wait(monkeypatch, timer_finishes)
    installed = _install(run_module, settings, certificate, renew_before="0.99")
    assert waits and ended[0][0] == 0, ended
    assert installed["changed_items"] == []
    assert installed["failed_items"] == [
        {
            "name": settings.name,
            "msg": f"{settings.name}: the issued certificate was refused: the certificate's"
            " public key is not the key it would be installed beside"
            f" ({settings.key_path}): that key changed since the plan made the CSR (the"
            " renewal timer may have rekeyed it), or the CA signed another key; run the play"
            " again to sign for the key on the host now",
        }
    ]
    assert _belong(settings)
    again = _plan(run_module, step_ca, settings, renew_before="0.99")
    installed = _install(
        run_module, settings, _sign(step_ca, provisioner_keys, again["items"][0]["request"])
    )
    assert installed["failed_items"] == [] and _belong(settings), installed


def test_a_rekey_between_plan_and_install_leaves_the_role_s_staged_key(
    step_ca, provisioner_keys, tmp_path, run_module
):
    """(c) The plan staged a key of another curve as <key>.next; before the install, the
    timer rekeys. The old timer wrote its own key over the staged one, so the install then
    refused the certificate the CA issued for the staged key."""
    settings = _issue(step_ca, provisioner_keys, tmp_path, "client", "c.example.test", rekey=True)
    plan = _plan(run_module, step_ca, settings, key_curve="P-384")
    assert plan["items"][0]["staged"] is True, plan
    staged = Path(settings.staged_key_path).read_bytes()
    certificate = _sign(step_ca, provisioner_keys, plan["items"][0]["request"])
    outcome = _renewal.run(settings, force=True)
    assert outcome.renewed and "kept the key without rekey" in outcome.message, outcome.message
    assert Path(settings.staged_key_path).read_bytes() == staged
    assert _belong(settings)
    installed = _install(run_module, settings, certificate, key_curve="P-384")
    assert installed["failed_items"] == [], installed
    assert installed["items"][0]["key_replaced"] is True
    assert Path(settings.key_path).read_bytes() == staged
    assert _belong(settings)
