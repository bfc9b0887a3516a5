# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host call 2 of the ``certificate`` role: check each issued certificate, then install it.

The ``certificate_install`` module's backend. For each item with an issued certificate:

1. the key the certificate will sit beside is ``<key>.next`` when one is staged, else ``<key>``;
2. the certificate must be exactly what the item asked for: subject = the common name only, SANs =
   :func:`._crypto.certificate_sans` (the collection's one rule), the profile's extended
   key usage only, the public key of that key, a chain to the trust bundle, valid now. Otherwise
   the item fails with the reasons and nothing of it is written;
3. the certificate (leaf + chain) is written atomically, THEN ``<key>.next`` is renamed over
   ``<key>``. A crash between the two leaves the new certificate beside ``<key>.next``, which the
   next ``certificate_plan`` call detects and finishes.

Steps 1 to 3 of an item happen under the certificate lock of its key folder
(:mod:`._item_lock`), which the renewal timer holds while it renews. A timer that rekeyed the
item after the plan made its CSR leaves a key the issued certificate does not fit: step 2
refuses it, and the next run signs for the new key.

One item's failure does not stop the others; the caller fails the host afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from ansible_collections.mtls.rollout.plugins.module_utils import (
    _crypto,
    _io,
    _item_lock,
)
from ansible_collections.mtls.rollout.plugins.module_utils._certificate_plan import (
    CERT_MODE,
    KEY_MODE,
    Item,
    PlanError,
    finish_swap,
    load_bundle,
    parse_items,
    read_key,
)

# Clock skew allowed for a certificate's start of validity (step-ca backdates by a minute).
_SKEW = timedelta(minutes=5)


def verify_issued(
    item: Item,
    certs: list[Any],
    key: Any,
    anchors: list[Any],
    now: datetime | None = None,
    key_path: str | None = None,
) -> list[str]:
    """Why ``certs`` (leaf first, then its chain) is not what ``item`` asked for; empty if it is.

    ``key`` is the key the certificate would sit beside, read from ``key_path`` (default the
    item's key)."""
    now = now or datetime.now(timezone.utc)
    leaf = certs[0]
    reasons = _crypto.identity_differences(leaf, item.common_name, item.expected_sans, item.profile)
    if not _crypto.same_public_key(leaf.public_key(), key):
        reasons.append(
            "the certificate's public key is not the key it would be installed beside"
            f" ({key_path or item.key_path}): that key changed since the plan made the CSR (the"
            " renewal timer may have rekeyed it), or the CA signed another key; run the play"
            " again to sign for the key on the host now"
        )
    ok, message = _crypto.chains_to(leaf, anchors, list(certs[1:]), now)
    if not ok:
        reasons.append(f"does not chain to the trust bundle: {message}")
    if _crypto.not_valid_before(leaf) > now + _SKEW:
        reasons.append("is not valid yet")
    if _crypto.not_valid_after(leaf) <= now:
        reasons.append("has expired")
    return reasons


@dataclass
class Outcome:
    name: str
    installed: bool = False
    key_replaced: bool = False
    changed: bool = False
    msg: str | None = None

    def result(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "name": self.name,
            "installed": self.installed,
            "key_replaced": self.key_replaced,
            "changed": self.changed,
        }
        if self.msg is not None:
            result["msg"] = self.msg
        return result


def _pem(certs: list[Any]) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)


def _install_one(
    module: Any, item: Item, certificate: str, anchors: list[Any], now: datetime | None
) -> Outcome:
    outcome = Outcome(item.name)
    staged = read_key(item.staged_key_path)
    key_path = item.staged_key_path if staged is not None else item.key_path
    key = staged if staged is not None else read_key(item.key_path)
    if key is None:
        outcome.msg = f"{item.name}: neither {item.key_path} nor {item.staged_key_path} exists"
        return outcome
    try:
        certs = _crypto.load_certificates(certificate.encode("ascii"), f"{item.name} certificate")
    except (_crypto.CryptoError, UnicodeEncodeError) as exc:
        outcome.msg = f"{item.name}: the issued certificate is unreadable: {exc}"
        return outcome
    reasons = verify_issued(item, certs, key, anchors, now, key_path)
    if reasons:
        outcome.msg = f"{item.name}: the issued certificate was refused: " + "; ".join(reasons)
        return outcome

    content = _pem(certs)
    current = _io.read_bytes(item.cert_path)
    outcome.installed = True
    outcome.key_replaced = staged is not None
    outcome.changed = current != content or staged is not None
    if module.check_mode:  # attributes are not predicted for a certificate not yet written
        return outcome
    if current != content:
        _io.write_file(
            module, item.cert_path, content, item.file_args(item.cert_path, CERT_MODE), secret=False
        )
    # Certificate first, key second: plan finishes the swap if a crash falls in between.
    if staged is not None:
        promote_staged_key(item)
    for path, mode in ((item.key_path, KEY_MODE), (item.cert_path, CERT_MODE)):
        outcome.changed |= _io.set_attributes(module, item.file_args(path, mode))
    return outcome


def promote_staged_key(item: Item) -> None:
    """Rename ``<key>.next`` over ``<key>`` (a seam for the crash tests)."""
    finish_swap(item)


def install(
    module: Any,
    raw_items: list[dict[str, Any]],
    bundle_path: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Verify and install every item's certificate; returns the module's result."""
    items = parse_items([{k: v for k, v in raw.items() if k != "certificate"} for raw in raw_items])
    bundle = _io.read_bytes(bundle_path)
    if bundle is None:
        raise PlanError(f"trust bundle {bundle_path} does not exist; run certificate_plan first")
    anchors = load_bundle(bundle, bundle_path)
    outcomes = []
    busy: dict[str, str] = {}  # folder -> why its lock was not taken (not waited for twice)
    for index, item in enumerate(items):
        raw = raw_items[index]
        folder = _item_lock.folder_of(item.key_path)
        if folder in busy:
            outcomes.append(Outcome(item.name, msg=f"{item.name}: {busy[folder]}"))
            continue
        try:
            with _item_lock.hold([folder], _item_lock.LOCK_WAIT):
                outcome = _install_one(module, item, raw["certificate"], anchors, now)
        except _item_lock.LockError as exc:
            busy[folder] = _item_lock.failure(exc, "this certificate was not installed")
            outcome = Outcome(item.name, msg=f"{item.name}: {busy[folder]}")
        except (PlanError, _io.FileIOError) as exc:
            outcome = Outcome(item.name, msg=f"{item.name}: {exc}")
        outcomes.append(outcome)
    results = [outcome.result() for outcome in outcomes]
    return {
        "changed": any(outcome.changed for outcome in outcomes),
        "items": results,
        "changed_items": [o.name for o in outcomes if o.changed],
        "failed_items": [{"name": o.name, "msg": o.msg} for o in outcomes if o.msg is not None],
    }
