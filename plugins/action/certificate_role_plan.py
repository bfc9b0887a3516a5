# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The certificate role's first step on each host; see plugins/modules/certificate_role_plan.py."""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.mtls.rollout.plugins.plugin_utils import _certificate_role as role
from ansible_collections.mtls.rollout.plugins.plugin_utils import _role_runtime as runtime
from ansible_collections.mtls.rollout.plugins.plugin_utils import _root_cache

ARGUMENT_SPEC = {
    "items": {"type": "list", "elements": "raw", "default": []},
    "certificate_dir": {"type": "str", "required": True},
    "trust_bundle_path": {"type": "str", "required": True},
    "renew_before": {"type": "raw", "default": "0.33"},
    "provisioners": {"type": "dict", "default": {"client": "clients", "server": "servers"}},
    "notify": {"type": "list", "elements": "str", "default": []},
    "ca_url": {"type": "str", "default": ""},
    "root_fingerprint": {"type": "str", "default": ""},
    "signer": {"type": "str", "default": "localhost"},
    "workers": {"type": "int", "default": 8},
    "root_cache_dir": {"type": "str", "default": ""},
    "renew_timer": {"type": "bool", "default": False},
    "renew_ca_url": {"type": "str", "default": ""},
    "renew_reload": {"type": "list", "elements": "str", "default": []},
    "renew_rekey": {"type": "bool", "default": False},
    "renew_schedule": {"type": "str", "default": "hourly"},
    "renew_random_delay": {"type": "str", "default": "30m"},
    "transition_roots": {"type": "list", "elements": "str", "default": []},
    "replace_unreadable_keys": {"type": "bool", "default": False},
    "issued_file": {"type": "str", "default": ""},
}
MAX_WORKERS = 32


def _timer(item: role.Item, args: dict[str, Any], ca: role.Ca) -> dict[str, Any]:
    """The item's renewal timer settings: its own values, else the role's."""

    def pick(own: Any, default: Any) -> Any:
        return default if own is None else own

    return {
        "enabled": bool(pick(item.renew_timer, args["renew_timer"])),
        "ca_url": args["renew_ca_url"] or ca.url,
        "reload": list(pick(item.renew_reload, args["renew_reload"])),
        "rekey": bool(pick(item.rekey, args["renew_rekey"])),
        "schedule": args["renew_schedule"],
        "random_delay": args["renew_random_delay"],
    }


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        check_mode = bool(self._task.check_mode)

        problem = runtime.strategy_problem(self._task) or role.facts_problem(
            str(task_vars.get("inventory_hostname")),
            runtime.fact_names(task_vars, str(task_vars.get("inventory_hostname"))),
        )
        if problem:
            return dict(result, failed=True, msg=problem)
        try:
            items = role.fill_items(
                args["items"],
                args["certificate_dir"],
                args["renew_before"],
                args["provisioners"],
                args["notify"],
            )
            defaults = runtime.step_ca_defaults(self._task, self._templar)
            ca = role.ca_settings(args["ca_url"], args["root_fingerprint"], defaults)
            if not 1 <= args["workers"] <= MAX_WORKERS:
                raise role.RoleError(
                    f"certificate_sign_workers must be between 1 and {MAX_WORKERS}"
                )
            issued_file = role.issued_file(args["issued_file"])
        except role.RoleError as exc:
            return dict(result, failed=True, msg=str(exc))

        cache = args["root_cache_dir"] or runtime.default_root_cache()
        # During a CA root rotation the trust bundle holds the rotation's other root too
        # (fetched from the same CA, pinned by its own fingerprint); certificates must still
        # chain to the CA's root (anchors), so those under the old one are re-issued.
        try:
            others = _root_cache.transition_fingerprints(args["transition_roots"], ca.fingerprint)
        except _root_cache.RootCacheError as exc:
            return dict(result, failed=True, msg=str(exc))
        roots = {}
        for fingerprint in [ca.fingerprint, *others]:
            try:
                roots[fingerprint], source = _root_cache.obtain(
                    cache, ca.url, fingerprint, ca.timeout, ca.retries
                )
            except _root_cache.RootCacheError as exc:
                return dict(
                    result,
                    failed=True,
                    msg=f"Cannot get the root certificate of {ca.url} pinned by fingerprint"
                    f" {fingerprint}: {exc}",
                )
            if fingerprint == ca.fingerprint:
                root, root_source = roots[fingerprint], source

        module_args = {
            "certificate_dir": args["certificate_dir"],
            "trust_bundle": _root_cache.bundle(roots),
            "trust_bundle_path": args["trust_bundle_path"],
            "owner": "root",
            "group": "root",
            "items": [
                dict(item.module_item(), state=item.state, renew_timer=_timer(item, args, ca))
                for item in items
            ],
            "replace_unreadable_keys": args["replace_unreadable_keys"],
        }
        if others:
            module_args["anchors"] = root
        planned = self._plan(module_args, task_vars)
        installed_library = None
        if planned.get("failed") and planned.get("missing_library"):
            package = str(planned["missing_library"])
            if check_mode:
                return self._without_library(result, items, package)
            apt = self._execute_module(
                module_name="ansible.builtin.apt",
                module_args={
                    "name": package,
                    "state": "present",
                    "update_cache": True,
                    "cache_valid_time": 3600,
                },
                task_vars=task_vars,
            )
            if apt.get("failed"):
                return dict(
                    result,
                    failed=True,
                    msg=f"Cannot install {package}, which the host modules need:"
                    f" {apt.get('msg', 'apt failed')}",
                )
            installed_library = package
            planned = self._plan(module_args, task_vars)
        if planned.get("failed"):
            return dict(result, failed=True, msg=planned.get("msg", "certificate_plan failed"))

        signer = args["signer"]
        try:
            requests = (
                [] if check_mode else role.signing_requests(items, planned.get("items"), signer, ca)
            )
            settings = self._settings(
                items, planned, signer, ca, args["workers"], defaults, task_vars
            )
        except role.RoleError as exc:
            return dict(result, failed=True, msg=str(exc))

        result.update(
            changed=bool(planned.get("changed")) or installed_library is not None,
            run=self._task._uuid,
            items=role.planned_items(items, planned.get("items")),
            needs_signing=list(planned.get("needs_signing") or []),
            trust_bundle_changed=bool(planned.get("trust_bundle_changed")),
            requests=requests,
            settings=settings,
            certificates=[item.as_dict() for item in items],
            root_source=root_source,
            issued_file=issued_file,
        )
        if installed_library:
            result["installed_library"] = installed_library
        if "diff" in planned:
            result["diff"] = planned["diff"]
        notify = role.plan_topics(items, args["notify"], planned) if result["changed"] else []
        if notify:
            result["_ansible_notify"] = notify
        return result

    def _plan(self, module_args: dict[str, Any], task_vars: dict[str, Any]) -> dict[str, Any]:
        return self._execute_module(
            module_name="mtls.rollout.certificate_plan",
            module_args=module_args,
            task_vars=task_vars,
        )

    def _settings(
        self,
        items: list[role.Item],
        planned: dict[str, Any],
        signer: str,
        ca: role.Ca,
        workers: int,
        defaults: dict[str, Any],
        task_vars: dict[str, Any],
    ) -> dict[str, Any]:
        """This host's settings key for each group it needs signing from (also in check mode,
        so that a missing password shows there too)."""
        wanted = set(planned.get("needs_signing") or [])
        groups = {}
        for item in items:
            if item.name in wanted:
                groups.setdefault(role.group_key(signer, ca, item.provisioner), item.provisioner)
        if not groups:
            return {}
        passwords = self._templar.template(task_vars.get(role.PASSWORDS_VAR))
        password = self._templar.template(task_vars.get(role.PASSWORD_VAR))
        key = role.run_key(runtime.run_folder())
        settings = {}
        for group, provisioner in groups.items():
            found = role.provisioner_password(ca.url, provisioner, passwords, password, defaults)
            if found is None:
                raise role.RoleError(
                    f"No provisioner password for {role.describe_group(group)}: set"
                    f" {role.PASSWORDS_VAR} (by provisioner name), {role.PASSWORD_VAR}, or"
                    " provisioner_password in module_defaults for group/mtls.rollout.step_ca"
                )
            settings[group] = role.settings_key(found, workers, ca, key)
        return settings

    def _without_library(
        self, result: dict[str, Any], items: list[role.Item], package: str
    ) -> dict[str, Any]:
        """Check mode on a host without the library: say what a real run would do."""
        entries = role.without_library(items, check_mode=True)
        for entry, item in zip(entries, items):
            entry["cert_path"] = item.cert_path
        result.update(
            changed=True,
            run=self._task._uuid,
            missing_library=package,
            would_install=[package],
            items=entries,
            needs_signing=[item.name for item in items],
            trust_bundle_changed=True,
            requests=[],
            settings={},
            certificates=[item.as_dict() for item in items],
            msg=f"{package} would be installed, then every certificate checked",
        )
        return result
