# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_stepca_init: intermediate rotation and the three phases of a root rotation."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import make_csr
from cryptography import x509
from stepca_server import free_port, launch, stop, wait_healthy
from test_stepca_init import CLIENTS_PASSWORD, params
from test_stepca_init import apply as write_files

from ansible_collections.mtls.rollout.plugins.module_utils import _crypto, _stepca, _stepca_init


def run(tmp_path: Path, **overrides) -> _stepca_init.Plan:
    """Plan and carry out, as the module does: writes in order, then removals."""
    plan = _stepca_init.plan(params(tmp_path, **overrides))
    write_files(plan)
    for path in plan.removes:
        os.remove(path)
    return plan


def layout(tmp_path: Path) -> _stepca_init.Layout:
    return _stepca_init.Layout(str(tmp_path / "etc"), str(tmp_path / "data"))


def cert(path: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


def snapshot(tmp_path: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}


def federated(tmp_path: Path):
    return json.loads(Path(layout(tmp_path).ca_json).read_text()).get("federatedRoots")


# --- intermediate -----------------------------------------------------------------------------


def test_rotate_intermediate_keeps_the_root_once_per_token(tmp_path):
    first = run(tmp_path)
    old = cert(layout(tmp_path).intermediate_cert)
    rotated = run(tmp_path, rotate_intermediate="2026-12")
    new = cert(layout(tmp_path).intermediate_cert)
    assert rotated.root_fingerprint == first.root_fingerprint
    assert rotated.intermediate_fingerprint != first.intermediate_fingerprint
    assert _stepca.fingerprint(new) == rotated.intermediate_fingerprint
    assert new.public_key() != old.public_key()
    assert _crypto.is_issued_by(new, cert(layout(tmp_path).root_cert))
    assert new.subject != old.subject  # a rotated intermediate has a name of its own
    assert any("intermediate CA rotated" in reason for reason in rotated.reasons)
    again = _stepca_init.plan(params(tmp_path, rotate_intermediate="2026-12"))
    assert again.writes == [] and again.removes == [] and again.reasons == []
    assert run(tmp_path, rotate_intermediate="2027-01").intermediate_fingerprint != (
        rotated.intermediate_fingerprint
    )


def test_rotate_intermediate_on_a_new_ca_records_the_token(tmp_path):
    run(tmp_path, rotate_intermediate="first")
    assert _stepca_init.plan(params(tmp_path, rotate_intermediate="first")).writes == []


# --- root: the three phases -------------------------------------------------------------------


def test_root_rotation_phases(tmp_path):
    files = layout(tmp_path)
    old = run(tmp_path)
    assert old.root_rotation == "none" and old.transition_roots == []

    prepared = run(tmp_path, root_rotation="prepare")
    new_root = cert(files.next_root_cert)
    new_fp = _stepca.fingerprint(new_root)
    # The CA keeps signing under the old root and serves the new one beside it.
    assert prepared.root_fingerprint == old.root_fingerprint
    assert prepared.intermediate_fingerprint == old.intermediate_fingerprint
    assert prepared.root_rotation == "prepared" and prepared.transition_roots == [new_fp]
    assert new_root.subject != cert(files.root_cert).subject
    assert _crypto.is_issued_by(cert(files.next_intermediate_cert), new_root)
    assert federated(tmp_path) == [files.next_root_cert]

    # Between phases, a run without a phase (and a second prepare) keeps the state.
    for phase in ("", "prepare"):
        same = _stepca_init.plan(params(tmp_path, root_rotation=phase))
        assert same.writes == [] and same.removes == []
        assert same.transition_roots == [new_fp]

    switched = run(tmp_path, root_rotation="switch")
    assert switched.root_fingerprint == new_fp
    assert switched.root_rotation == "switched"
    assert switched.transition_roots == [old.root_fingerprint]
    assert _stepca.fingerprint(cert(files.previous_root_cert)) == old.root_fingerprint
    assert _crypto.is_issued_by(cert(files.intermediate_cert), new_root)
    assert not any(os.path.exists(p) for p in files.next_files())
    assert federated(tmp_path) == [files.previous_root_cert]
    for phase in ("", "switch"):
        assert _stepca_init.plan(params(tmp_path, root_rotation=phase)).writes == []

    finished = run(tmp_path, root_rotation="finish")
    assert finished.root_fingerprint == new_fp
    assert finished.root_rotation == "none" and finished.transition_roots == []
    assert not os.path.exists(files.previous_root_cert)
    assert not federated(tmp_path)
    assert any("no longer trusted" in reason for reason in finished.reasons)
    again = _stepca_init.plan(params(tmp_path, root_rotation="finish"))
    assert again.writes == [] and again.removes == []


@pytest.mark.parametrize(
    ("state", "phase", "message"),
    [
        ("none", "switch", "run the prepare phase first"),
        ("prepared", "finish", "run the switch phase"),
        ("switched", "prepare", "run the finish phase"),
    ],
)
def test_a_phase_out_of_order_is_refused_and_changes_nothing(tmp_path, state, phase, message):
    run(tmp_path)
    if state in ("prepared", "switched"):
        run(tmp_path, root_rotation="prepare")
    if state == "switched":
        run(tmp_path, root_rotation="switch")
    before = snapshot(tmp_path)
    with pytest.raises(_stepca_init.StepCAInitError, match=message):
        _stepca_init.plan(params(tmp_path, root_rotation=phase))
    assert snapshot(tmp_path) == before


def test_a_phase_and_a_regeneration_in_one_run_are_refused(tmp_path):
    run(tmp_path)
    with pytest.raises(_stepca_init.StepCAInitError, match="cannot be done in one run"):
        _stepca_init.plan(params(tmp_path, root_rotation="prepare", regenerate="now"))


def test_a_damaged_prepared_root_is_never_regenerated(tmp_path):
    files = layout(tmp_path)
    run(tmp_path)
    run(tmp_path, root_rotation="prepare")
    Path(files.next_root_key).unlink()
    for phase in ("prepare", "switch"):
        with pytest.raises(_stepca_init.StepCAInitError, match="never regenerated silently"):
            _stepca_init.plan(params(tmp_path, root_rotation=phase))


def test_an_interrupted_prepare_is_made_again(tmp_path):
    files = layout(tmp_path)
    run(tmp_path)
    plan = _stepca_init.plan(params(tmp_path, root_rotation="prepare"))
    # The run died after the new root's key, before its certificate (the marker).
    key = next(c for c in plan.writes if c.path == files.next_root_key)
    Path(key.path).write_bytes(key.content)
    kept = _stepca_init.plan(params(tmp_path))
    assert files.next_root_key in kept.removes and kept.transition_roots == []
    again = run(tmp_path, root_rotation="prepare")
    assert again.root_rotation == "prepared"
    assert _stepca.fingerprint(cert(files.next_root_cert)) == again.transition_roots[0]


@pytest.mark.parametrize("died_after", [1, 2, 3, 4, 5])
def test_an_interrupted_switch_is_finished_by_the_next_run(tmp_path, died_after):
    """The switch's writes are ordered so that a run dying after any of them is finished."""
    files = layout(tmp_path)
    old = run(tmp_path)
    run(tmp_path, root_rotation="prepare")
    new_fp = _stepca.fingerprint(cert(files.next_root_cert))
    plan = _stepca_init.plan(params(tmp_path, root_rotation="switch"))
    assert plan.writes[0].path == files.previous_root_cert
    for change in plan.writes[:died_after]:
        Path(change.path).write_bytes(change.content)
    # A run without a phase (say site.yml) finishes the switch; prepare or finish refuse.
    with pytest.raises(_stepca_init.StepCAInitError, match="interrupted"):
        _stepca_init.plan(params(tmp_path, root_rotation="finish"))
    finished = run(tmp_path)
    assert finished.root_fingerprint == new_fp
    assert finished.transition_roots == [old.root_fingerprint]
    assert _crypto.is_issued_by(cert(files.intermediate_cert), cert(files.root_cert))
    assert not os.path.exists(files.next_root_cert)
    assert _stepca_init.plan(params(tmp_path)).writes == []


def test_regenerate_drops_a_rotation(tmp_path):
    files = layout(tmp_path)
    run(tmp_path)
    run(tmp_path, root_rotation="prepare")
    fresh = run(tmp_path, regenerate="again")
    assert fresh.root_rotation == "none"
    assert not any(os.path.exists(p) for p in files.next_files())
    assert not federated(tmp_path)


def test_operator_federated_roots_are_kept(tmp_path):
    files = layout(tmp_path)
    run(tmp_path)
    config = json.loads(Path(files.ca_json).read_text())
    config["federatedRoots"] = ["/etc/step-ca/certs/partner.crt"]
    Path(files.ca_json).write_text(json.dumps(config))
    run(tmp_path, root_rotation="prepare")
    assert federated(tmp_path) == ["/etc/step-ca/certs/partner.crt", files.next_root_cert]
    run(tmp_path, root_rotation="switch")
    run(tmp_path, root_rotation="finish")
    assert federated(tmp_path) == ["/etc/step-ca/certs/partner.crt"]


# --- a real step-ca through the phases --------------------------------------------------------


def _serve(tmp_path, step_ca_binary, port, root_pem):
    files = layout(tmp_path)
    log = tmp_path / f"step-ca-{port}.log"
    proc = launch(step_ca_binary, files.password_file, files.ca_json, log)
    wait_healthy(f"https://127.0.0.1:{port}", root_pem, proc, log)
    return proc


def _sign(url: str, root_pem: str) -> list[x509.Certificate]:
    client = _stepca.StepCAClient(url, root_pem=root_pem, retries=1)
    key = client.provisioner_key("clients", CLIENTS_PASSWORD.encode())
    signed = client.sign(key, _stepca.SignRequest(csr=make_csr("worker")))
    # The leaf, then the intermediates step-ca sent with it.
    pems = [signed.certificate, *signed.chain]
    return [x509.load_pem_x509_certificate(pem.encode()) for pem in pems]


def test_real_step_ca_through_a_rotation(tmp_path, step_ca_binary):
    """step-ca serves the rotation's other root at /root/<fingerprint> (the certificate role
    fetches it from there) and signs under the root and intermediate of each phase."""
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    (tmp_path / "data").mkdir()
    old = run(tmp_path, address=f"127.0.0.1:{port}")
    proc = _serve(tmp_path, step_ca_binary, port, old.root_pem)
    try:
        first = _sign(url, old.root_pem)
    finally:
        stop(proc)

    rotated = run(tmp_path, address=f"127.0.0.1:{port}", rotate_intermediate="one")
    prepared = run(tmp_path, address=f"127.0.0.1:{port}", root_rotation="prepare")
    new_fp = prepared.transition_roots[0]
    proc = _serve(tmp_path, step_ca_binary, port, old.root_pem)
    try:
        chain = _sign(url, old.root_pem)
        assert _stepca.fingerprint(chain[1]) == rotated.intermediate_fingerprint
        assert _stepca.fingerprint(chain[1]) != _stepca.fingerprint(first[1])
        served = _stepca.StepCAClient(url, root_fingerprint=new_fp, retries=1).bootstrap_root()
        assert _stepca.fingerprint(served) == new_fp
    finally:
        stop(proc)

    switched = run(tmp_path, address=f"127.0.0.1:{port}", root_rotation="switch")
    proc = _serve(tmp_path, step_ca_binary, port, switched.root_pem)
    try:
        chain = _sign(url, switched.root_pem)
        assert _crypto.is_issued_by(chain[1], cert(layout(tmp_path).root_cert))
        assert switched.root_fingerprint == new_fp
        client = _stepca.StepCAClient(url, root_fingerprint=old.root_fingerprint, retries=1)
        assert _stepca.fingerprint(client.bootstrap_root()) == old.root_fingerprint
    finally:
        stop(proc)
