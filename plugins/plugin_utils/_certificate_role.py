# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``certificate`` role's controller side, used by its three action plugins.

The role is three tasks per host (``certificate_role_plan``, ``certificate_role_sign``,
``certificate_role_install``); what they decide is here, as plain functions on plain data,
so that it is tested without Ansible:

* **items**: each ``certificate_items`` entry with the role's defaults filled in
  (:func:`fill_items`), and the CA settings (:func:`ca_settings`), from the role's
  variables or else from ``module_defaults`` for ``group/mtls.rollout.step_ca``;
* **requests**: what a host asks to be signed (:func:`signing_requests`). Only the CSR
  comes from the host; the common name, SANs and lifetime the token authorises come from
  the inventory;
* **groups**: requests are signed per (signer, CA URL, root fingerprint, provisioner). Each
  host states, per group, its *settings key* (workers, timeout, retries and an HMAC of its
  provisioner password under a per-run key: never the password); hosts of a group whose
  settings differ are signed apart, each set with its own settings;
* **leaders**: the first host of ``ansible_play_batch`` with a request in a group and the
  same settings for it signs those hosts' requests of the group (:func:`leader`). Plans
  are told apart by a run token (the plan task's uuid), so a host that skipped the role,
  or ran it in an earlier ``include_role``, never counts;
* **outcomes**: the leader's per-item results go back to each host (:func:`distribute`,
  :func:`outcomes_for`), which installs what was issued and fails with the CA's reasons.

Everything runs on the controller; only :mod:`._root_cache` talks to the network.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional

from ansible_collections.mtls.rollout.plugins.module_utils import _crypto, _stepca

# The role's registered results and the variables its actions read themselves (the
# passwords are never task arguments, so that no task prints them).
PLAN_VAR = "__certificate_plan"
SIGN_VAR = "__certificate_signed"
PASSWORDS_VAR = "certificate_ca_provisioner_passwords"
PASSWORD_VAR = "certificate_ca_provisioner_password"  # noqa: S105 - a variable name
STEP_CA_SIGN = "mtls.rollout.step_ca_sign"
CRYPTOGRAPHY_PACKAGE = "python3-cryptography"
PROFILES = ("client", "server")

# Keys of a certificate_items entry (meta/argument_specs.yml), and those the host modules take.
ITEM_KEYS = frozenset(
    (
        "name",
        "common_name",
        "subject_alt_names",
        "profile",
        "key_type",
        "key_curve",
        "key_size",
        "provisioner",
        "duration",
        "renew_before",
        "key_path",
        "cert_path",
        "owner",
        "group",
        "notify",
        "state",
        "renew_timer",
        "renew_reload",
        "rekey",
    )
)
STATES = ("present", "absent")
MODULE_ITEM_KEYS = (
    "name",
    "common_name",
    "subject_alt_names",
    "profile",
    "key_type",
    "key_curve",
    "key_size",
    "key_path",
    "cert_path",
    "owner",
    "group",
    "renew_before",
)


class RoleError(Exception):
    """A configuration or input error; the message is safe to show (no secrets)."""


# ----------------------------------------------------------------------------- items


@dataclass(frozen=True)
class Item:
    """One ``certificate_items`` entry with the role's defaults filled in."""

    name: str
    common_name: str
    subject_alt_names: tuple[str, ...]
    profile: str
    key_type: str
    key_curve: str
    key_size: int
    provisioner: str
    duration: str
    renew_before: str
    key_path: str
    cert_path: str
    owner: str
    group: str
    notify: tuple[str, ...]
    state: str = "present"
    # The renewal timer's item settings; None takes the role's certificate_renew_* value.
    renew_timer: bool | None = None
    renew_reload: tuple[str, ...] | None = None
    rekey: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        """The item as plain data, for the plan's registered result."""
        data = dataclasses.asdict(self)
        data["subject_alt_names"] = list(self.subject_alt_names)
        data["notify"] = list(self.notify)
        if self.renew_reload is not None:
            data["renew_reload"] = list(self.renew_reload)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Item:
        """The item :meth:`as_dict` gave."""
        values = {name: data.get(name) for name in cls.__dataclass_fields__}
        values["state"] = values["state"] or "present"
        values["subject_alt_names"] = tuple(values["subject_alt_names"])
        values["notify"] = tuple(values["notify"])
        if values["renew_reload"] is not None:
            values["renew_reload"] = tuple(values["renew_reload"])
        return cls(**values)

    def module_item(self) -> dict[str, Any]:
        """The item as ``certificate_plan`` and ``certificate_install`` take it."""
        item = {key: getattr(self, key) for key in MODULE_ITEM_KEYS}
        item["subject_alt_names"] = list(self.subject_alt_names)
        return item

    def token_sans(self) -> list[str]:
        """The SANs the signing token authorises, as step-ca reads them (empty: the CN alone)."""
        try:
            return _crypto.token_strings(_crypto.parse_sans(list(self.subject_alt_names)))
        except _crypto.CryptoError as exc:
            raise RoleError(f"certificate {self.name}: {exc}") from None


def _text(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RoleError(f"{what} must be a string, got {value!r}")
    return str(value).strip()


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise RoleError(f"{what} must be a list of strings, got {value!r}")
    return tuple(_text(entry, what) for entry in value)


def _flag(value: Any, what: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise RoleError(f"{what} must be true or false, got {value!r}")


def fill_items(
    raw_items: Any,
    certificate_dir: str,
    renew_before: Any,
    provisioners: Any,
    notify: Any,
) -> list[Item]:
    """Each entry of ``certificate_items`` with its defaults; raises :class:`RoleError`.

    Checks what the role needs before anything runs on the host: a list of entries, each
    with a unique name and a common name, a known profile and a provisioner. The host
    module checks the rest (key types, SANs, paths) before it writes anything.
    """
    if raw_items is None:
        raw_items = []
    if not isinstance(raw_items, (list, tuple)):
        raise RoleError(f"certificate_items must be a list, got {raw_items!r}")
    if not isinstance(provisioners, Mapping):
        raise RoleError("certificate_ca_provisioners must map client and server to provisioners")
    notify_all = _strings(notify, "certificate_notify")
    folder = _text(certificate_dir, "certificate_dir").rstrip("/") or "/"
    items: list[Item] = []
    names: set[str] = set()
    for position, raw in enumerate(raw_items):
        if not isinstance(raw, Mapping):
            raise RoleError(f"certificate_items[{position}] must be a dictionary, got {raw!r}")
        unknown = sorted(set(raw) - ITEM_KEYS)
        if unknown:
            raise RoleError(f"certificate_items[{position}] has unknown keys: {', '.join(unknown)}")
        name = _text(raw.get("name", ""), f"certificate_items[{position}].name")
        if not name:
            raise RoleError(
                "Every certificate_items entry needs a unique name, a common_name, and a"
                f" profile of client or server; entry {position} has no name."
            )
        if name in names:
            raise RoleError(f"certificate_items: the name {name!r} is used twice")
        names.add(name)
        where = f"certificate {name}"
        state = raw.get("state") or "present"
        if state not in STATES:
            raise RoleError(f"{where}: state must be present or absent, got {state!r}")
        # An absent item is named only to remove its files; its names do not matter.
        default_cn = name if state == "absent" else ""
        common_name = _text(raw.get("common_name") or default_cn, f"{where}: common_name")
        if not common_name:
            raise RoleError(f"{where}: common_name is required")
        profile = raw.get("profile") or "server"
        if profile not in PROFILES:
            raise RoleError(f"{where}: profile must be client or server, got {profile!r}")
        provisioner = raw.get("provisioner") or provisioners.get(profile)
        if not provisioner or not isinstance(provisioner, str):
            raise RoleError(
                f"{where}: no provisioner; set certificate_ca_provisioners.{profile}"
                " or the item's provisioner"
            )
        key_size = raw.get("key_size") or 2048
        if isinstance(key_size, bool) or not str(key_size).isdigit():
            raise RoleError(f"{where}: key_size must be a number of bits, got {key_size!r}")
        item_renew = raw.get("renew_before")
        items.append(
            Item(
                name=name,
                common_name=common_name,
                subject_alt_names=_strings(
                    raw.get("subject_alt_names"), f"{where}: subject_alt_names"
                ),
                profile=profile,
                key_type=_text(raw.get("key_type") or "ec", f"{where}: key_type"),
                key_curve=_text(raw.get("key_curve") or "P-256", f"{where}: key_curve"),
                key_size=int(key_size),
                provisioner=provisioner,
                duration=_text(raw.get("duration") or "", f"{where}: duration"),
                renew_before=str(renew_before if item_renew in (None, "") else item_renew),
                key_path=_text(raw.get("key_path") or f"{folder}/{name}.key", f"{where}: key_path"),
                cert_path=_text(
                    raw.get("cert_path") or f"{folder}/{name}.crt", f"{where}: cert_path"
                ),
                owner=_text(raw.get("owner") or "root", f"{where}: owner"),
                group=_text(raw.get("group") or "root", f"{where}: group"),
                notify=notify_all + _strings(raw.get("notify"), f"{where}: notify"),
                state=state,
                renew_timer=_flag(raw.get("renew_timer"), f"{where}: renew_timer"),
                renew_reload=None
                if raw.get("renew_reload") is None
                else _strings(raw.get("renew_reload"), f"{where}: renew_reload"),
                rekey=_flag(raw.get("rekey"), f"{where}: rekey"),
            )
        )
    return items


def facts_problem(host: str, fact_names: Iterable[str]) -> str | None:
    """Why ``host`` may not run the role, when its facts set the role's variables.

    Facts outrank inventory variables, and a host reports its facts itself: one that sets
    ``certificate_items`` (or the CA, the provisioners, the signer) would choose its own
    certificates. Every variable of the role starts with ``certificate_``.
    """
    found = sorted(name for name in fact_names if name.startswith("certificate_"))
    if not found:
        return None
    return (
        f"The facts of {host} set {', '.join(found)}: facts come from the host itself and"
        " outrank the inventory, so a host could choose its own certificates. Nothing was"
        " done on this host. Set the role's variables in the inventory or the play (a"
        " set_fact without cacheable: true is fine), and remove the host's fact cache"
        " entries if it has any."
    )


def issued_file(value: Any) -> str:
    """``certificate_issued_file``: an absolute path on the controller, or empty for none."""
    path = "" if value is None else str(value).strip()
    if path and not os.path.isabs(path):
        raise RoleError(
            "certificate_issued_file must be an absolute path on the controller (or empty for"
            f' no issuance record), got "{path}". For a file next to the inventory use'
            ' "{{ inventory_dir }}/issued-certificates.yml", the default.'
        )
    return path


# ----------------------------------------------------------------------------- CA settings


@dataclass(frozen=True)
class Ca:
    """The CA a host's certificates come from, as every call to it is pinned."""

    url: str
    fingerprint: str
    timeout: float
    retries: int


def ca_settings(url: Any, fingerprint: Any, defaults: Mapping[str, Any]) -> Ca:
    """The CA from the role's variables, or else from ``module_defaults`` (``defaults``).

    ``defaults`` are the options ``module_defaults`` give ``mtls.rollout.step_ca_sign``
    (for example through ``group/mtls.rollout.step_ca``). Raises :class:`RoleError`.
    """
    url_text = str(url or defaults.get("ca_url") or "").strip()
    fingerprint_text = str(fingerprint or defaults.get("root_fingerprint") or "").strip()
    problem = None
    if not re.match(r"^https://[^/\s]", url_text):
        problem = "the URL must start with https://"
    else:
        try:
            fingerprint_text = _stepca.normalize_fingerprint(fingerprint_text)
        except _stepca.StepCAError:
            problem = "the fingerprint must be 64 hex digits"
    if problem:
        raise RoleError(
            "Set certificate_ca_url (https://...) and certificate_ca_root_fingerprint (the"
            " root's hex SHA-256 fingerprint, for example in group_vars), or ca_url and"
            " root_fingerprint in module_defaults for group/mtls.rollout.step_ca;"
            f' {problem}. Got URL "{url_text}" and fingerprint "{fingerprint_text}".'
        )
    try:
        timeout = float(defaults.get("timeout") or _stepca.DEFAULT_TIMEOUT)
        retries = int(defaults.get("retries", _stepca.DEFAULT_RETRIES))
    except (TypeError, ValueError):
        raise RoleError(
            "module_defaults for group/mtls.rollout.step_ca: timeout and retries must be numbers"
        ) from None
    return Ca(url_text.rstrip("/"), fingerprint_text, timeout, retries)


# ----------------------------------------------------------------------------- passwords


@dataclass(frozen=True)
class Password:
    """A provisioner password, or the file on the signer that holds it; ``source`` says which
    variable gave it, for messages. ``value`` is secret and never shown."""

    source: str
    value: str | None = field(default=None, repr=False)
    file: str | None = None


def provisioner_password(
    ca_url: str,
    provisioner: str,
    passwords: Any,
    password: Any,
    defaults: Mapping[str, Any],
) -> Password | None:
    """The password a host gives for ``provisioner`` of ``ca_url``, or ``None``.

    In this order: ``certificate_ca_provisioner_passwords["<ca url> <provisioner>"]``, then
    ``certificate_ca_provisioner_passwords[<provisioner>]``, then
    ``certificate_ca_provisioner_password``, then ``provisioner_password`` or
    ``provisioner_password_file`` from ``module_defaults``.
    """
    if passwords and not isinstance(passwords, Mapping):
        raise RoleError(f"{PASSWORDS_VAR} must be a mapping of provisioner names to passwords")
    passwords = passwords or {}
    for key in (f"{ca_url} {provisioner}", provisioner):
        value = passwords.get(key)
        if value not in (None, ""):
            return Password(f"{PASSWORDS_VAR}[{key!r}]", value=str(value))
    if password not in (None, ""):
        return Password(PASSWORD_VAR, value=str(password))
    if defaults.get("provisioner_password") not in (None, ""):
        return Password("module_defaults", value=str(defaults["provisioner_password"]))
    if defaults.get("provisioner_password_file") not in (None, ""):
        return Password("module_defaults", file=str(defaults["provisioner_password_file"]))
    return None


RUN_KEY_NAME = "mtls-rollout-settings.key"


def run_key(folder: str) -> bytes:
    """A random key shared by every worker of one ``ansible-playbook`` run.

    Kept in ``folder`` (the run's private local temporary folder, removed when the run
    ends). The first worker to need it creates it atomically (link of a complete file), so
    every worker reads the same 32 bytes.
    """
    path = os.path.join(folder, RUN_KEY_NAME)
    try:
        with open(path, "rb") as handle:
            key = handle.read()
        if len(key) == 32:
            return key
    except FileNotFoundError:
        pass
    temporary = os.path.join(folder, f".{RUN_KEY_NAME}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(descriptor, secrets.token_bytes(32))
    finally:
        os.close(descriptor)
    try:
        os.link(temporary, path)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise
    finally:
        os.unlink(temporary)
    with open(path, "rb") as handle:
        key = handle.read()
    if len(key) != 32:
        raise RoleError(f"{path} is not a settings key of this run")
    return key


def settings_key(password: Password | None, workers: Any, ca: Ca, key: bytes) -> dict[str, Any]:
    """What must be the same for every host of a signing group, comparable without secrets.

    The password appears as an HMAC under this run's key (useless outside the run), or as
    the path of the password file on the signer.
    """
    if password is None:
        secret = None
    elif password.file is not None:
        secret = f"file {password.file}"
    else:
        digest = hmac.new(key, (password.value or "").encode(), hashlib.sha256).hexdigest()
        secret = f"hmac {digest}"
    return {
        "password": secret,
        "workers": workers,
        "timeout": ca.timeout,
        "retries": ca.retries,
    }


# ----------------------------------------------------------------------------- groups


def group_key(signer: str, ca: Ca, provisioner: str) -> str:
    """The signing group a request belongs to (a string, so it can key registered data)."""
    return json.dumps([signer, ca.url, ca.fingerprint, provisioner])


def describe_group(key: str) -> str:
    signer, url, _fingerprint, provisioner = json.loads(key)
    return f"provisioner {provisioner!r} of {url} (signer {signer})"


def group_fields(key: str) -> tuple[str, str, str, str]:
    """``(signer, ca_url, root_fingerprint, provisioner)`` of a group key."""
    signer, url, fingerprint, provisioner = json.loads(key)
    return signer, url, fingerprint, provisioner


def signing_requests(items: list[Item], planned: Any, signer: str, ca: Ca) -> list[dict[str, Any]]:
    """What this host asks to be signed: one request per item that needs signing.

    ``planned`` is ``certificate_plan``'s ``items`` result. Only its CSR is used: what the
    token authorises (common name, SANs, lifetime) comes from ``items``, so a host that
    forges its module result cannot ask for another name.
    """
    by_name = {}
    for entry in planned if isinstance(planned, list) else []:
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            by_name[entry["name"]] = entry
    requests = []
    for item in items:
        entry = by_name.get(item.name)
        if entry is None:
            raise RoleError(f"certificate {item.name}: the host's plan does not mention it")
        if not entry.get("needs_signing"):
            continue
        csr = (entry.get("request") or {}).get("csr")
        if not isinstance(csr, str) or not csr:
            raise RoleError(f"certificate {item.name}: the host made no CSR for it")
        request = {
            "name": item.name,
            "group": group_key(signer, ca, item.provisioner),
            "csr": csr,
            "common_name": item.common_name,
            "subject_alt_names": item.token_sans(),
        }
        if item.duration:
            request["duration"] = item.duration
        requests.append(request)
    return requests


def groups_of(requests: Iterable[Mapping[str, Any]]) -> list[str]:
    """The distinct groups of ``requests``, in order."""
    seen: list[str] = []
    for request in requests:
        if request["group"] not in seen:
            seen.append(request["group"])
    return seen


# A host's plan of this run (or None): how the sign and install steps see other hosts.
PlanLookup = Callable[[str], Optional[Dict[str, Any]]]


def of_run(result: Any, run: str) -> Mapping[str, Any] | None:
    """``result`` when it is a successful plan (or sign) result of run ``run``, else ``None``."""
    if not isinstance(result, Mapping) or result.get("run") != run or result.get("failed"):
        return None
    return result


def leader(batch: Iterable[str], group: str, settings: Any, lookup: PlanLookup) -> str | None:
    """The first host of ``batch`` whose plan has a request in ``group`` with these
    ``settings`` for it: it signs the group's hosts that have the same settings.

    Hosts of one group that differ in their settings (a password, the workers) are thus
    signed apart, each set by one of its own hosts, and one host's wrong password fails
    only the hosts that have it. Stops at the first match, so with the usual fleet (the
    first host has requests, every host the same settings) each host finds its leader in
    one look.
    """
    for host in batch:
        plan = lookup(host)
        if (
            plan
            and any(request.get("group") == group for request in plan.get("requests", ()))
            and (plan.get("settings") or {}).get(group) == settings
        ):
            return host
    return None


@dataclass(frozen=True)
class Member:
    """One request of a signing group, with the host's settings key for the group."""

    host: str
    request: Mapping[str, Any]
    settings: Any


def members(
    batch: Iterable[str], settings: Mapping[str, Any], lookup: PlanLookup
) -> dict[str, list[Member]]:
    """Every request of the batch in the groups of ``settings`` (group: the leader's settings
    for it) from the hosts with those same settings, in batch order (one pass over the batch)."""
    wanted: dict[str, list[Member]] = {group: [] for group in settings}
    for host in batch:
        plan = lookup(host)
        if not plan:
            continue
        own = plan.get("settings") or {}
        for request in plan.get("requests", ()):
            group = request.get("group")
            if group in wanted and own.get(group) == settings[group]:
                wanted[group].append(Member(host, request, own.get(group)))
    return wanted


_SETTING_NAMES = {
    "password": "the provisioner password",
    "workers": "certificate_sign_workers",
    "timeout": "the timeout",
    "retries": "the retries",
}


def _hosts_text(hosts: list[str]) -> str:
    return ", ".join(hosts)


def disagreement(group: str, group_members: list[Member]) -> str | None:
    """Why the hosts of ``group`` cannot be signed together, or ``None`` when they agree.

    :func:`members` gives only hosts with the leader's settings, so this is the last guard
    before a signature. Names the hosts and the settings they differ in; a password is only
    ever compared, as its HMAC, never shown.
    """
    by_host: dict[str, Any] = {}
    for member in group_members:
        by_host.setdefault(member.host, member.settings)
    if any(not isinstance(settings, Mapping) for settings in by_host.values()):
        missing = [host for host, settings in by_host.items() if not isinstance(settings, Mapping)]
        return f"{describe_group(group)}: hosts {_hosts_text(missing)} gave no signing settings"
    missing_password = [host for host, settings in by_host.items() if not settings.get("password")]
    if missing_password:
        return (
            f"no provisioner password for {describe_group(group)} on hosts"
            f" {_hosts_text(missing_password)}; set {PASSWORDS_VAR}, {PASSWORD_VAR}, or"
            " provisioner_password in module_defaults for group/mtls.rollout.step_ca"
        )
    differences = []
    for name, label in _SETTING_NAMES.items():
        values: dict[str, list[str]] = {}
        for host, settings in by_host.items():
            values.setdefault(json.dumps(settings.get(name), sort_keys=True), []).append(host)
        if len(values) < 2:
            continue
        if name == "password":
            sets = "; ".join(_hosts_text(hosts) for hosts in values.values())
            differences.append(f"{label} (one per set of hosts: {sets})")
        else:
            sets = "; ".join(
                f"{_hosts_text(hosts)}: {json.loads(value)}" for value, hosts in values.items()
            )
            differences.append(f"{label} ({sets})")
    if not differences:
        return None
    return (
        f"hosts {_hosts_text(list(by_host))} are signed together by {describe_group(group)}"
        f" but do not agree on {' and '.join(differences)}; set these once for all of them"
        " (for example in group_vars/all)"
    )


def sign_arguments(
    group: str, group_members: list[Member], password: Password, settings: Mapping[str, Any]
) -> dict[str, Any]:
    """The options of the one ``step_ca_sign`` call that signs ``group``."""
    _signer, url, fingerprint, provisioner = group_fields(group)
    csrs = []
    for member in group_members:
        entry = {
            key: member.request[key]
            for key in ("csr", "common_name", "subject_alt_names", "duration")
            if key in member.request
        }
        csrs.append(entry)
    arguments: dict[str, Any] = {
        "ca_url": url,
        "root_fingerprint": fingerprint,
        "provisioner": provisioner,
        "timeout": settings["timeout"],
        "retries": settings["retries"],
        "workers": settings["workers"],
        "csrs": csrs,
    }
    if password.file is not None:
        arguments["provisioner_password_file"] = password.file
    else:
        arguments["provisioner_password"] = password.value
    return arguments


OutcomeMap = Dict[str, Dict[str, Dict[str, Any]]]


def _outcome(result: Any) -> dict[str, Any]:
    """The part of a ``step_ca_sign`` item result a host needs (no secrets in any of it)."""
    if isinstance(result, Mapping) and result.get("ok") and result.get("fullchain"):
        return {
            "ok": True,
            "fullchain": result["fullchain"],
            "serial_hex": result.get("serial_hex"),
            "not_after": result.get("not_after"),
        }
    message = result.get("msg") if isinstance(result, Mapping) else None
    return {"ok": False, "msg": str(message or "no certificate in step_ca_sign's answer")}


def fail_all(outcomes: OutcomeMap, group_members: list[Member], message: str) -> None:
    """Record ``message`` as the outcome of every request of a group."""
    for member in group_members:
        outcomes.setdefault(member.host, {})[member.request["name"]] = {"ok": False, "msg": message}


def distribute(
    outcomes: OutcomeMap, group_members: list[Member], signed: Mapping[str, Any]
) -> None:
    """Record ``step_ca_sign``'s answer for a group: per item, or its one error for all."""
    results = signed.get("results")
    if signed.get("failed") or not isinstance(results, list):
        fail_all(outcomes, group_members, str(signed.get("msg") or "no answer from step_ca_sign"))
        return
    if len(results) != len(group_members):
        fail_all(outcomes, group_members, "step_ca_sign answered for another number of requests")
        return
    for member, result in zip(group_members, results):
        outcomes.setdefault(member.host, {})[member.request["name"]] = _outcome(result)


# ----------------------------------------------------------------------------- install


def outcomes_for(
    host: str,
    plan: Mapping[str, Any],
    signed: Mapping[str, Any] | None,
    lookup_signed: PlanLookup,
) -> dict[str, dict[str, Any] | None]:
    """This host's outcome per requested item (``None``: the signing host gave none)."""
    leaders = (signed or {}).get("leaders") or {}
    found: dict[str, dict[str, Any] | None] = {}
    for request in plan.get("requests", ()):
        lead = leaders.get(request["group"])
        source = signed if lead == host else (lookup_signed(lead) if lead else None)
        outcome = None
        if source is not None and source.get("run") == plan.get("run"):
            outcome = ((source.get("outcomes") or {}).get(host) or {}).get(request["name"])
        found[request["name"]] = outcome
    return found


def failures(
    outcomes: Mapping[str, dict[str, Any] | None], installed: Mapping[str, Any] | None
) -> list[str]:
    """Why this host did not get every certificate it asked for, one line per item."""
    lines = []
    for name, outcome in outcomes.items():
        if outcome is None:
            lines.append(f"{name}: no signing result (did the signing host fail?)")
        elif outcome.get("unrecorded"):
            lines.append(f"{name}: {outcome.get('msg')}")
        elif not outcome.get("ok"):
            lines.append(
                f"{name}: step-ca did not sign it: {outcome.get('msg') or 'unknown error'}"
            )
    for failure in (installed or {}).get("failed_items") or []:
        lines.append(str(failure.get("msg")))
    return lines


def topics(items: Iterable[Item], names: Iterable[str]) -> list[str]:
    """The handler topics to notify for the items called ``names``, each once, in order."""
    wanted = set(names)
    found: list[str] = []
    for item in items:
        if item.name in wanted:
            found.extend(topic for topic in item.notify if topic not in found)
    return found


def plan_topics(
    items: list[Item], notify_all: Iterable[str], planned: Mapping[str, Any]
) -> list[str]:
    """Topics the plan step notifies: for a changed trust bundle, and for a key swap an
    interrupted run left half done and this run finished (the service must load the pair)."""
    found = list(notify_all) if planned.get("trust_bundle_changed") else []
    swapped = [
        entry.get("name")
        for entry in planned.get("items") or []
        if isinstance(entry, Mapping) and entry.get("swap_finished")
    ]
    found.extend(topic for topic in topics(items, swapped) if topic not in found)
    return found


def without_library(items: list[Item], check_mode: bool) -> list[dict[str, Any]]:
    """The plan's item results for a host that lacks python3-cryptography, in check mode:
    nothing can be inspected, so every certificate would be checked and maybe signed."""
    reason = (
        f"{CRYPTOGRAPHY_PACKAGE} is missing on the host; a real run installs it first, then"
        " checks this certificate and signs it if needed"
    )
    return [
        {
            "name": item.name,
            "changed": check_mode,
            "needs_signing": True,
            "reason": reason,
            "reasons": [reason],
            "key_path": item.key_path,
            "staged": False,
            "swap_finished": False,
        }
        for item in items
    ]


def planned_items(items: list[Item], planned: Any) -> list[dict[str, Any]]:
    """The plan's per-item results as the role registers them: without the host's own
    request (its CSR is in the requests), with the certificate's path."""
    by_name = {
        entry.get("name"): entry
        for entry in (planned if isinstance(planned, list) else [])
        if isinstance(entry, Mapping)
    }
    results = []
    for item in items:
        entry = dict(by_name.get(item.name) or {"name": item.name})
        entry.pop("request", None)
        entry["cert_path"] = item.cert_path
        entry.setdefault("key_path", item.key_path)
        results.append(entry)
    return results
