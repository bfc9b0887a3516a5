# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The certificate role's install step (docs:  plugins/modules/certificate_role_install.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.mtls.rollout.plugins.plugin_utils import _certificate_role as role
from ansible_collections.mtls.rollout.plugins.plugin_utils import _role_runtime as runtime

ARGUMENT_SPEC = {"trust_bundle_path": {"type": "str", "required": True}}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        host = task_vars.get("inventory_hostname")
        plan = task_vars.get(role.PLAN_VAR)
        if not isinstance(plan, Mapping) or "run" not in plan or plan.get("failed"):
            return dict(result, skipped=True, skip_reason="the role's plan did not run here")
        items = [role.Item.from_dict(entry) for entry in plan.get("certificates") or []]
        planned = {entry["name"]: entry for entry in plan.get("items") or []}
        result.update(changed=False, changed_items=[], certificates=[])

        if self._task.check_mode:
            would = [item for item in items if planned[item.name].get("needs_signing")]
            if not would:
                return dict(result, skipped=True, skip_reason="nothing would be signed")
            result.update(
                changed=True,
                msg=[
                    f"{item.name} would be signed: {planned[item.name].get('reason')}"
                    for item in would
                ],
                _ansible_verbose_always=True,
            )
            return result
        if not plan.get("requests"):
            return dict(result, skipped=True, skip_reason="nothing was signed for this host")

        run = plan["run"]
        signed = role.of_run(task_vars.get(role.SIGN_VAR), run)

        def lookup(other: str) -> Mapping[str, Any] | None:
            return role.of_run(runtime.registered(task_vars, other, role.SIGN_VAR), run)

        outcomes = role.outcomes_for(host, plan, signed, lookup)
        issued = [
            dict(item.module_item(), certificate=outcomes[item.name]["fullchain"])
            for item in items
            if (outcomes.get(item.name) or {}).get("ok")
        ]
        installed: dict[str, Any] = {}
        if issued:
            installed = self._execute_module(
                module_name="mtls.rollout.certificate_install",
                module_args={"trust_bundle_path": args["trust_bundle_path"], "items": issued},
                task_vars=task_vars,
            )
            if installed.get("failed"):
                message = installed.get("msg", "certificate_install failed")
                installed = {
                    "failed_items": [
                        {"name": entry["name"], "msg": f"{entry['name']}: {message}"}
                        for entry in issued
                    ]
                }
        # The host's word, bounded by what it was given: it cannot have changed the others.
        given = {entry["name"] for entry in issued}
        changed_items = [name for name in installed.get("changed_items") or [] if name in given]
        failures = role.failures(outcomes, installed)
        result.update(
            changed=bool(changed_items),
            changed_items=changed_items,
            certificates=[
                self._entry(item, outcomes[item.name])
                for item in items
                if item.name in changed_items
            ],
        )
        if failures:
            result["failures"] = failures
        if changed_items:
            # What the default output shows for this task: why each certificate was signed.
            result["msg"] = [
                f"{name}: {planned[name].get('reason')}"
                for name in changed_items
                if name in planned
            ]
            result["_ansible_verbose_always"] = True
        notify = role.topics(items, changed_items)
        if notify:
            result["_ansible_notify"] = notify
        return result

    @staticmethod
    def _entry(item: role.Item, outcome: Mapping[str, Any]) -> dict[str, Any]:
        """A certificate that changed: where its files are, and what was issued."""
        return {
            "name": item.name,
            "cert_path": item.cert_path,
            "key_path": item.key_path,
            "serial": outcome.get("serial_hex"),
            "not_after": outcome.get("not_after"),
        }
