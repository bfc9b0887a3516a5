# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The certificate role's signing step; see plugins/modules/certificate_role_sign.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.mtls.rollout.plugins.plugin_utils import _certificate_role as role
from ansible_collections.mtls.rollout.plugins.plugin_utils import _issued_record
from ansible_collections.mtls.rollout.plugins.plugin_utils import _role_runtime as runtime


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        self.validate_argument_spec(argument_spec={})
        host = task_vars.get("inventory_hostname")
        plan = task_vars.get(role.PLAN_VAR)
        if not isinstance(plan, Mapping) or "run" not in plan or plan.get("failed"):
            return dict(result, skipped=True, skip_reason="the role's plan did not run here")
        run = plan["run"]
        requests = plan.get("requests") or []
        result.update(run=run, leaders={}, led=[], outcomes={})
        if not requests:
            return dict(result, skipped=True, skip_reason="nothing to sign for this host")

        def lookup(other: str) -> Mapping[str, Any] | None:
            if other == host:
                return plan
            return role.of_run(runtime.registered(task_vars, other, role.PLAN_VAR), run)

        batch = list(task_vars.get("ansible_play_batch") or [host])
        if host not in batch:
            batch.append(host)
        own = plan.get("settings") or {}
        leaders = {
            group: role.leader(batch, group, own.get(group), lookup)
            for group in role.groups_of(requests)
        }
        led = [group for group, lead in leaders.items() if lead == host]
        result.update(leaders=leaders, led=led)
        if not led:
            return result

        outcomes: role.OutcomeMap = {}
        grouped = role.members(batch, {group: own.get(group) for group in led}, lookup)
        defaults = runtime.step_ca_defaults(self._task, self._templar)
        passwords = self._templar.template(task_vars.get(role.PASSWORDS_VAR))
        password = self._templar.template(task_vars.get(role.PASSWORD_VAR))
        for group in led:
            group_members = grouped[group]
            problem = role.disagreement(group, group_members)
            if problem:
                role.fail_all(outcomes, group_members, problem)
                continue
            _signer, url, _fingerprint, provisioner = role.group_fields(group)
            found = role.provisioner_password(url, provisioner, passwords, password, defaults)
            if found is None:  # the plan step found one; the variables changed since
                role.fail_all(
                    outcomes, group_members, f"no password for {role.describe_group(group)}"
                )
                continue
            signed = self._execute_module(
                module_name=role.STEP_CA_SIGN,
                module_args=role.sign_arguments(
                    group, group_members, found, plan["settings"][group]
                ),
                task_vars=task_vars,
            )
            role.distribute(outcomes, group_members, signed)
        # Into each host's issuance record before any host installs it: what is not recorded
        # is not installed (mtls.rollout.revoke relies on the record, not on the host).
        if not self._task.check_mode:
            _issued_record.record_outcomes(
                outcomes,
                [
                    (member.host, member.request["name"], role.group_fields(group)[1])
                    for group in led
                    for member in grouped[group]
                ],
                {
                    member.host: str((lookup(member.host) or {}).get("issued_file") or "")
                    for group in led
                    for member in grouped[group]
                },
            )
        result.update(
            outcomes=outcomes,
            changed=any(
                outcome.get("ok") for by_item in outcomes.values() for outcome in by_item.values()
            ),
        )
        return result
