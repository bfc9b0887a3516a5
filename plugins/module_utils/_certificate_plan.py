# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host call 1 of the ``certificate`` role: check each item, fix what needs no CA, ask for the rest.

The ``certificate_plan`` module's backend. One call per host per run:

1. creates the certificate folder and installs the trust bundle (atomically, only if it differs);
2. per item, finishes a key swap an earlier run left half done: when the installed certificate
   belongs to ``<key>.next``, that key is moved over ``<key>`` (see :mod:`._certificate_install`,
   which writes the certificate first and renames the key second);
3. makes a missing key at its path; stages a key whose type, curve or size must change as
   ``<key>.next`` (the working key is never replaced before its certificate is there); removes a
   ``.next`` that is no longer wanted;
4. evaluates the installed certificate against the item (key, trust bundle, subject, SANs, profile,
   lifetime left) and makes a CSR, from the key the certificate will sit beside, for each item that
   needs signing.

Everything is decided first (:func:`assess`, reads only), then done (:func:`apply`), so bad input or
an unreadable key fails before any file is touched, and check mode predicts with the same code.
Both happen under the certificate lock of every item's key folder (:func:`locked`), which the
renewal timers and ``certificate_install`` take too, so the plan never acts on their half-done
steps.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterator

from ansible_collections.mtls.rollout.plugins.module_utils import (
    _crypto,
    _io,
    _item_lock,
    _renewal,
    _renewal_install,
)

STAGED_SUFFIX = ".next"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
KEY_MODE = "0600"
CERT_MODE = "0644"
DIR_MODE = "0755"
BUNDLE_MODE = "0644"


class PlanError(Exception):
    """Bad input or a file the plan cannot use. Nothing was changed when it is raised."""


@contextlib.contextmanager
def locked(raw_items: list[dict[str, Any]]) -> Iterator[None]:
    """Hold the certificate lock (:mod:`._item_lock`) of every item's key folder, waiting at
    most :data:`._item_lock.LOCK_WAIT`; raises :class:`PlanError` when it cannot."""
    folders = [_item_lock.folder_of(item.key_path) for item in parse_items(raw_items)]
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(_item_lock.hold(folders, _item_lock.LOCK_WAIT))
        except _item_lock.LockError as exc:
            unchanged = "none of this host's certificates was changed"
            raise PlanError(_item_lock.failure(exc, unchanged)) from None
        yield


# ------------------------------------------------------------------------ items

ITEM_OPTIONS: dict[str, dict[str, Any]] = {
    "name": {"type": "str", "required": True},
    "common_name": {"type": "str", "required": True},
    "subject_alt_names": {"type": "list", "elements": "str", "default": []},
    "profile": {"type": "str", "choices": ["client", "server"], "default": "server"},
    "key_type": {"type": "str", "choices": ["ec", "rsa", "ed25519"], "default": "ec"},
    "key_curve": {"type": "str", "choices": ["P-256", "P-384", "P-521"], "default": "P-256"},
    "key_size": {"type": "int", "choices": [2048, 3072, 4096], "default": 2048},
    "key_path": {"type": "path", "required": True},
    "cert_path": {"type": "path", "required": True},
    "owner": {"type": "str"},
    "group": {"type": "str"},
    "renew_before": {"type": "raw", "default": "0.33"},
}
# certificate_plan's items also say whether they are wanted at all, and their renewal timer.
PLAN_ITEM_OPTIONS: dict[str, dict[str, Any]] = dict(
    ITEM_OPTIONS,
    state={"type": "str", "choices": ["present", "absent"], "default": "present"},
    renew_timer={"type": "dict", "options": _renewal_install.TIMER_OPTIONS},
)


@dataclass(frozen=True)
class Item:
    """One certificate of the host, validated."""

    name: str
    common_name: str
    sans: tuple[_crypto.San, ...]
    profile: str
    key_spec: _crypto.KeySpec
    key_path: str
    cert_path: str
    owner: str | None
    group: str | None
    renew_before: _crypto.RenewBefore
    state: str = "present"
    timer: dict[str, Any] | None = None

    @property
    def staged_key_path(self) -> str:
        return self.key_path + STAGED_SUFFIX

    @property
    def csr_path(self) -> str:
        """Where a CSR beside the certificate would be (the role keeps CSRs in memory; one
        left there by hand or by other tools goes with ``state: absent``)."""
        return os.path.splitext(self.cert_path)[0] + ".csr"

    @property
    def absent(self) -> bool:
        return self.state == "absent"

    @property
    def expected_sans(self) -> tuple[_crypto.San, ...]:
        """The SANs the issued certificate must carry, exactly (the collection's one rule)."""
        return _crypto.certificate_sans(self.common_name, self.sans)

    def request(self) -> dict[str, Any]:
        """What the signing token authorises: the common name and exactly these SANs
        (none: the common name alone)."""
        return {
            "common_name": self.common_name,
            "subject_alt_names": _crypto.token_strings(self.sans),
        }

    def file_args(self, path: str, mode: str) -> dict[str, Any]:
        return {"path": path, "mode": mode, "owner": self.owner, "group": self.group}


def parse_items(raw_items: list[dict[str, Any]]) -> list[Item]:
    """Validate the items (already through the argument spec); raises :class:`PlanError`."""
    items: list[Item] = []
    names: set[str] = set()
    paths: dict[str, str] = {}
    for raw in raw_items:
        name = str(raw["name"]).strip()
        if not name:
            raise PlanError("every item needs a non-empty name")
        if name in names:
            raise PlanError(f"item name {name!r} is used twice")
        names.add(name)
        for what in ("name", "key_path", "cert_path"):
            if _CONTROL.search(str(raw[what])):
                # They end up in file names, systemd units and log lines, where a newline
                # would start a line of its own.
                raise PlanError(
                    f"item {name!r}: {what} holds a control character (such as a newline)"
                )
        try:
            common_name = str(raw["common_name"]).strip()
            _crypto.build_name({"common_name": common_name})
            if not common_name:
                raise _crypto.CryptoError("common_name is empty")
            spec = _crypto.KeySpec.create(raw["key_type"], raw["key_curve"], raw["key_size"])
            item = Item(
                name=name,
                common_name=common_name,
                sans=_crypto.parse_sans(raw.get("subject_alt_names") or []),
                profile=raw["profile"],
                key_spec=spec,
                key_path=os.path.abspath(raw["key_path"]),
                cert_path=os.path.abspath(raw["cert_path"]),
                owner=raw.get("owner"),
                group=raw.get("group"),
                renew_before=_crypto.RenewBefore.parse(raw.get("renew_before", "0.33")),
                state=raw.get("state") or "present",
                timer=raw.get("renew_timer"),
            )
            # Both raise for names step-ca would issue otherwise than asked (before any write).
            item.expected_sans  # noqa: B018
            item.request()
        except _crypto.CryptoError as exc:
            raise PlanError(f"item {name}: {exc}") from exc
        # An absent item's CSR is removed with it: it must not be another item's file.
        csr = (item.csr_path,) if item.absent else ()
        for path in (item.key_path, item.staged_key_path, item.cert_path, *csr):
            if path in paths:
                raise PlanError(f"item {name}: {path} is also used by item {paths[path]}")
            paths[path] = name
        items.append(item)
    return items


def load_bundle(pem: str | bytes, name: str = "trust bundle") -> list[Any]:
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        return _crypto.load_certificates(data, name)
    except _crypto.CryptoError as exc:
        raise PlanError(str(exc)) from exc


class UnreadableKey(PlanError):
    """A key file that exists but holds no private key this plan can load (damaged,
    truncated, not a key, or encrypted). A file that cannot be read at all is a plain
    :class:`PlanError`: that is a permission or disk problem, never a reason for a new key.

    ``problem`` is what is wrong with the file, without the advice.
    """

    def __init__(self, problem: str) -> None:
        super().__init__(
            f"{problem}. The file was left untouched; move it away, or set"
            " replace_unreadable_keys (the certificate role's"
            " certificate_replace_unreadable_keys), to have a new key made."
        )
        self.problem = problem


def read_key(path: str) -> Any:
    """The private key at ``path``, or ``None``; raises :class:`PlanError` when unreadable."""
    data = _read(path)
    if data is None:
        return None
    try:
        return _crypto.load_private_key(data, None, path).key
    except _crypto.CryptoError as exc:
        raise UnreadableKey(str(exc)) from exc


def _read(path: str) -> bytes | None:
    try:
        return _io.read_bytes(path)
    except _io.FileIOError as exc:
        raise PlanError(str(exc)) from exc


def read_certificates(path: str) -> tuple[list[Any] | None, str | None]:
    """``(certificates, None)``, ``(None, None)`` when missing, ``(None, why)`` when unreadable."""
    data = _read(path)
    if data is None:
        return None, None
    try:
        return _crypto.load_certificates(data, path), None
    except _crypto.CryptoError as exc:
        return None, f"certificate unreadable: {exc}"


# ------------------------------------------------------------------------ assess


@dataclass
class ItemPlan:
    """What :func:`apply` does for one item, and what the role needs to know."""

    item: Item
    key_action: str  # keep, create, stage, keep_staged
    finish_swap: bool = False
    remove_staged: bool = False
    needs_signing: bool = False
    reasons: list[str] = field(default_factory=list)
    key: Any = None  # the key the certificate must sit beside (None until made)
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    cert_exists: bool = False

    @property
    def signing_key_path(self) -> str:
        if self.key_action in ("stage", "keep_staged"):
            return self.item.staged_key_path
        return self.item.key_path

    @property
    def changes_files(self) -> bool:
        return self.key_action in ("create", "stage") or self.finish_swap or self.remove_staged

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons) if self.reasons else "certificate is valid"


def _key_text(key: Any) -> str | None:
    return None if key is None else _crypto.KeySpec.of(key).describe()


def assess(
    item: Item,
    anchors: list[Any],
    now: datetime | None = None,
    replace_unreadable_keys: bool = False,
) -> ItemPlan:
    """Decide for one item, reading files only.

    A key file that holds no loadable key fails the plan, unless ``replace_unreadable_keys``:
    then it is treated as missing, and replaced by a new key (and certificate).
    """
    now = now or datetime.now(timezone.utc)
    unreadable = ""
    try:
        key = read_key(item.key_path)
    except UnreadableKey as exc:
        if not replace_unreadable_keys:
            raise
        key, unreadable = None, exc.problem
    try:
        staged = read_key(item.staged_key_path)
    except PlanError:
        staged, staged_unreadable = None, True  # our own staging file: replaced or removed
    else:
        staged_unreadable = False
    staged_exists = staged is not None or staged_unreadable
    certs, cert_problem = read_certificates(item.cert_path)
    leaf = certs[0] if certs else None
    plan = ItemPlan(
        item=item, key_action="keep", cert_exists=certs is not None or bool(cert_problem)
    )
    plan.before = {
        "key": _key_text(key),
        "staged_key": _key_text(staged) if not staged_unreadable else "unreadable",
        "certificate": _cert_text(leaf),
    }

    # A run that died between writing the certificate and renaming the key: finish it.
    if (
        staged is not None
        and leaf is not None
        and _crypto.same_public_key(leaf.public_key(), staged)
        and (key is None or not _crypto.same_public_key(leaf.public_key(), key))
    ):
        plan.finish_swap = True
        key, staged, staged_exists = staged, None, False
        plan.reasons.append("finished an interrupted key swap")

    if key is None:
        plan.key_action = "create"
        plan.remove_staged = staged_exists
        plan.needs_signing = True
        if unreadable:
            plan.before["key"] = "unreadable"
            plan.reasons.append(f"{unreadable}; replaced with a new key (replace_unreadable_keys)")
        else:
            plan.reasons.append(f"private key {item.key_path} is missing; a new one is made")
    elif _crypto.KeySpec.of(key) != item.key_spec:
        what = f"key is {_crypto.KeySpec.of(key).describe()}, wanted {item.key_spec.describe()}"
        if staged is not None and _crypto.KeySpec.of(staged) == item.key_spec:
            plan.key_action, plan.key = "keep_staged", staged
            plan.reasons.append(f"{what}; the key staged as {item.staged_key_path} is used")
        else:
            plan.key_action = "stage"
            plan.reasons.append(f"{what}; a new key is staged as {item.staged_key_path}")
        plan.needs_signing = True
    else:
        plan.key = key
        plan.remove_staged = staged_exists

    if cert_problem:
        plan.needs_signing = True
        plan.reasons.append(cert_problem)
    elif leaf is None:
        plan.needs_signing = True
        plan.reasons.append(f"certificate {item.cert_path} is missing")
    elif plan.key_action == "keep":
        desired = _crypto.Desired(
            subject={"common_name": item.common_name},
            sans=item.sans,
            profile=item.profile,
            key=plan.key,
            renew_before=item.renew_before,
            anchors=anchors,
            intermediates=list(certs[1:]),
        )
        verdict = _crypto.evaluate_certificate(leaf, desired, now)
        if verdict.needs_signing:
            plan.needs_signing = True
            plan.reasons.extend(verdict.reasons)

    after_key = key if plan.key_action in ("keep", "stage", "keep_staged") else None
    plan.after = {
        "key": _key_text(after_key) if plan.key_action != "create" else item.key_spec.describe(),
        "staged_key": item.key_spec.describe()
        if plan.key_action in ("stage", "keep_staged")
        else None,
        "certificate": plan.before["certificate"] if not plan.finish_swap else _cert_text(leaf),
        "needs_signing": plan.needs_signing,
    }
    return plan


def _cert_text(cert: Any) -> dict[str, Any] | None:
    if cert is None:
        return None
    facts = _crypto.certificate_facts(cert)
    return {
        key: facts[key]
        for key in ("subject_string", "subject_alt_names", "profile", "serial", "not_after")
    }


# ------------------------------------------------------------------------- apply


@dataclass
class AbsentPlan:
    """An item with ``state: absent``: the files of it that exist, to remove."""

    item: Item
    existing: list[str]
    before: dict[str, Any]


def assess_absent(item: Item) -> AbsentPlan:
    """What an absent item still has on the host (reads only; unreadable files are removed
    all the same)."""
    paths = (item.key_path, item.staged_key_path, item.cert_path, item.csr_path)
    existing = [path for path in paths if os.path.lexists(path)]
    try:
        key = read_key(item.key_path)
    except PlanError:
        key = "unreadable"
    certs, problem = read_certificates(item.cert_path)
    before = {
        "state": "present" if existing else "absent",
        "key": key if key in (None, "unreadable") else _key_text(key),
        "certificate": _cert_text(certs[0]) if certs else ("unreadable" if problem else None),
        "files": existing,
    }
    return AbsentPlan(item, existing, before)


@dataclass
class Plan:
    """The whole host's plan: the folder, the trust bundle and every item."""

    certificate_dir: str
    bundle_path: str
    bundle_pem: bytes
    bundle_current: bytes | None
    items: list[ItemPlan]
    dir_exists: bool
    owner: str | None = None  # of the folder and the trust bundle
    group: str | None = None
    absent: list[AbsentPlan] = field(default_factory=list)
    timers: dict[str, _renewal_install.TimerPlan] = field(default_factory=dict)
    program: dict[str, bytes] = field(default_factory=dict)  # renewal program files to write
    layout: _renewal_install.Layout = field(default_factory=_renewal_install.Layout)

    @property
    def bundle_changes(self) -> bool:
        return self.bundle_current != self.bundle_pem


def make_plan(
    raw_items: list[dict[str, Any]],
    certificate_dir: str,
    bundle_path: str,
    bundle_pem: str,
    owner: str | None = None,
    group: str | None = None,
    now: datetime | None = None,
    layout: _renewal_install.Layout | None = None,
    anchors_pem: str | None = None,
    replace_unreadable_keys: bool = False,
) -> Plan:
    """Validate everything and decide every item; reads only. Raises :class:`PlanError`.

    Certificates must chain to ``anchors_pem`` (default: the trust bundle), which during a
    root rotation is the CA's current root while the bundle also holds the other one.
    ``replace_unreadable_keys``: see :func:`assess`.
    """
    layout = layout or _renewal_install.Layout()
    every = parse_items(raw_items)
    items = [item for item in every if not item.absent]
    bundle = load_bundle(bundle_pem)
    anchors = load_bundle(anchors_pem, "anchors") if anchors_pem else bundle
    pem = b"".join(_crypto_pem(cert) for cert in bundle)
    certificate_dir = os.path.abspath(certificate_dir)
    bundle_path = os.path.abspath(bundle_path)
    for item in every:
        # Both would be written on every run, each over the other (a key over the bundle);
        # an absent item would remove it.
        if bundle_path in (item.key_path, item.staged_key_path, item.cert_path, item.csr_path):
            raise PlanError(f"item {item.name}: {bundle_path} is also the trust bundle")
    dir_exists = os.path.isdir(certificate_dir)
    if os.path.exists(certificate_dir) and not dir_exists:
        raise PlanError(f"{certificate_dir} exists but is not a folder")
    for item in items:
        for path in (item.key_path, item.cert_path):
            folder = os.path.dirname(path)
            if folder != certificate_dir and not os.path.isdir(folder):
                raise PlanError(f"item {item.name}: folder {folder} does not exist")
    plans = [assess(item, anchors, now, replace_unreadable_keys) for item in items]
    absent = [assess_absent(item) for item in every if item.absent]
    try:
        timers = {
            item.name: _renewal_install.assess_timer(
                item, item.timer, item.absent, bundle_path, layout
            )
            for item in every
        }
        wanted = any(timer.wanted for timer in timers.values())
        program = _renewal_install.assess_program(layout) if wanted else {}
    except (_renewal_install.InstallError, _renewal.RenewalError, _crypto.CryptoError) as exc:
        raise PlanError(str(exc)) from exc
    return Plan(
        certificate_dir,
        bundle_path,
        pem,
        _read(bundle_path),
        plans,
        dir_exists,
        owner,
        group,
        absent,
        timers,
        program,
        layout,
    )


def _crypto_pem(cert: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def apply(module: Any, plan: Plan) -> dict[str, Any]:
    """Carry out ``plan`` (or, in check mode, only predict); returns the module's result."""
    check = module.check_mode
    changed = False
    if not plan.dir_exists:
        changed = True
        if not check:
            try:
                os.makedirs(plan.certificate_dir, mode=0o755)
            except OSError as exc:
                raise PlanError(f"cannot create {plan.certificate_dir}: {exc}") from exc
    if plan.dir_exists or not check:
        changed |= _io.set_attributes(
            module,
            {
                "path": plan.certificate_dir,
                "mode": DIR_MODE,
                "owner": plan.owner,
                "group": plan.group,
            },
        )

    bundle_changed = plan.bundle_changes
    bundle_args = {
        "path": plan.bundle_path,
        "mode": BUNDLE_MODE,
        "owner": plan.owner,
        "group": plan.group,
    }
    if bundle_changed and not check:
        _write(module, plan.bundle_path, plan.bundle_pem, bundle_args, secret=False)
    elif plan.bundle_current is not None:
        bundle_changed |= _io.set_attributes(module, bundle_args)
    changed |= bundle_changed

    results = []
    for item_plan in plan.items:
        item_changed = _apply_item(module, item_plan)
        changed |= item_changed
        results.append(_item_result(item_plan, item_changed, check))
    for absent in plan.absent:
        if not check:
            for path in absent.existing:
                _remove(path)
        changed |= bool(absent.existing)
        results.append(_absent_result(absent))
    try:
        timers_changed = _renewal_install.apply(
            module, plan.program, list(plan.timers.values()), plan.layout
        )
    except _renewal_install.InstallError as exc:
        raise PlanError(str(exc)) from exc
    changed |= timers_changed
    for entry in results:
        timer = plan.timers.get(entry["name"])
        if timer is not None:
            entry["renew_timer"] = timer.state(after=True)
            entry["renew_timer_changed"] = timer.changes
            entry["changed"] = entry["changed"] or timer.changes

    result: dict[str, Any] = {
        "changed": changed,
        "trust_bundle_changed": bundle_changed,
        "items": results,
        "needs_signing": [r["name"] for r in results if r["needs_signing"]],
    }
    if module._diff:
        before = {p.item.name: dict(p.before) for p in plan.items}
        before.update({p.item.name: dict(p.before) for p in plan.absent})
        after = {p.item.name: dict(p.after) for p in plan.items}
        after.update({p.item.name: {"state": "absent"} for p in plan.absent})
        for name, timer in plan.timers.items():
            before[name]["renew_timer"] = timer.state(after=False)
            after[name]["renew_timer"] = timer.state(after=True)
        result["diff"] = {
            "before": {"trust_bundle": _bundle_text(plan.bundle_current), "items": before},
            "after": {"trust_bundle": _bundle_text(plan.bundle_pem), "items": after},
        }
        if plan.program:
            result["diff"]["before"]["renewal_program"] = "differs"
            result["diff"]["after"]["renewal_program"] = "installed"
    return result


def _bundle_text(pem: bytes | None) -> list[str] | None:
    if pem is None:
        return None
    try:
        return [c.subject.rfc4514_string() for c in _crypto.load_certificates(pem)]
    except _crypto.CryptoError:
        return ["unreadable"]


def _write(module: Any, path: str, content: bytes, args: dict[str, Any], secret: bool) -> None:
    try:
        _io.write_file(module, path, content, args, secret=secret)
    except _io.FileIOError as exc:
        raise PlanError(str(exc)) from exc


def _remove(path: str) -> None:
    try:
        _io.remove_file(path)
    except _io.FileIOError as exc:
        raise PlanError(str(exc)) from exc


def _apply_item(module: Any, plan: ItemPlan) -> bool:
    item, check = plan.item, module.check_mode
    changed = plan.changes_files
    if not check:
        if plan.finish_swap:
            finish_swap(item)
        if plan.remove_staged:
            _remove(item.staged_key_path)
        if plan.key_action in ("create", "stage"):
            key = _crypto.generate_private_key(item.key_spec)
            content = _crypto.serialize_private_key(key)
            path = item.key_path if plan.key_action == "create" else item.staged_key_path
            _write(module, path, content, item.file_args(path, KEY_MODE), secret=True)
            plan.key = key
    key_exists = plan.key_action != "create" or not check
    if key_exists:
        changed |= _io.set_attributes(module, item.file_args(item.key_path, KEY_MODE))
    if plan.key_action in ("stage", "keep_staged") and not (check and plan.key_action == "stage"):
        changed |= _io.set_attributes(module, item.file_args(item.staged_key_path, KEY_MODE))
    if plan.cert_exists:
        changed |= _io.set_attributes(module, item.file_args(item.cert_path, CERT_MODE))
    return changed


def finish_swap(item: Item) -> None:
    """Move ``<key>.next`` over ``<key>`` (atomic rename; owner and mode come along)."""
    try:
        os.replace(item.staged_key_path, item.key_path)
    except OSError as exc:
        raise PlanError(
            f"cannot move {item.staged_key_path} to {item.key_path}: {exc.strerror or exc}"
        ) from exc


def _absent_result(plan: AbsentPlan) -> dict[str, Any]:
    item = plan.item
    reason = f"removed {', '.join(plan.existing)}" if plan.existing else "absent"
    return {
        "name": item.name,
        "state": "absent",
        "changed": bool(plan.existing),
        "needs_signing": False,
        "reason": reason,
        "reasons": [reason],
        "removed": list(plan.existing),
        "key_path": item.key_path,
        "staged": False,
        "swap_finished": False,
    }


def _item_result(plan: ItemPlan, changed: bool, check: bool) -> dict[str, Any]:
    item = plan.item
    result: dict[str, Any] = {
        "name": item.name,
        "state": "present",
        "changed": changed,
        "needs_signing": plan.needs_signing,
        "reason": plan.reason,
        "reasons": list(plan.reasons),
        "key_path": plan.signing_key_path,
        "staged": plan.signing_key_path != item.key_path,
        "swap_finished": plan.finish_swap,
    }
    if plan.needs_signing and not check and plan.key is not None:
        spec = _crypto.CsrSpec.create(
            {"common_name": item.common_name}, [str(san) for san in item.sans], item.profile
        )
        csr = _crypto.build_csr(plan.key, spec)
        result["request"] = dict(item.request(), csr=_crypto.csr_pem(csr))
    return result
