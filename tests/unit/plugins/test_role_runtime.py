# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the certificate role's actions take from ansible-core
(plugins/plugin_utils/_role_runtime.py): other hosts' registered results, module_defaults
for step_ca_sign, and the play's strategy. The fleet tests run them inside ansible-playbook."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest

from ansible_collections.mtls.rollout.plugins.plugin_utils import _role_runtime as runtime


class FakeHostVars(dict):
    """Only ``raw_get``, as ansible-core's HostVars has it."""

    def raw_get(self, host):
        return self[host]


def test_registered_results_are_read_from_the_variable_managers_store():
    store = defaultdict(dict, {"h1": {"__certificate_plan": {"run": "r"}}})
    hostvars = FakeHostVars()
    hostvars._variable_manager = SimpleNamespace(_nonpersistent_fact_cache=store)
    task_vars = {"hostvars": hostvars}
    assert runtime.registered(task_vars, "h1", "__certificate_plan") == {"run": "r"}
    assert runtime.registered(task_vars, "h2", "__certificate_plan") is None
    assert "h2" not in store  # reading never adds a host


def test_registered_results_fall_back_to_hostvars():
    hostvars = FakeHostVars(h1={"__certificate_plan": {"run": "r"}})
    assert runtime.registered({"hostvars": hostvars}, "h1", "__certificate_plan") == {"run": "r"}
    assert runtime.registered({"hostvars": hostvars}, "h9", "__certificate_plan") is None
    assert runtime.registered({}, "h1", "__certificate_plan") is None


def _task(strategy):
    return SimpleNamespace(get_play=lambda: SimpleNamespace(strategy=strategy))


@pytest.mark.parametrize("strategy", ["linear", "ansible.builtin.linear", "debug"])
def test_linear_strategies_are_accepted(strategy):
    assert runtime.strategy_problem(_task(strategy)) is None


@pytest.mark.parametrize("strategy", ["free", "host_pinned", "ansible.builtin.free"])
def test_other_strategies_are_refused_with_the_reason(strategy):
    problem = runtime.strategy_problem(_task(strategy))
    assert problem.startswith("The certificate role needs the linear strategy")
    assert repr(strategy) in problem


class FakeTemplar:
    def template(self, value):
        return {
            key: value.upper() if isinstance(value, str) else value for key, value in value.items()
        }


def test_module_defaults_by_hand_take_the_group_then_the_module():
    task = SimpleNamespace(
        module_defaults=[
            {"group/mtls.rollout.step_ca": {"ca_url": "https://group", "retries": 1}},
            {"mtls.rollout.step_ca_sign": {"ca_url": "https://module"}},
            {"group/other": {"timeout": 99}},
        ],
        get_play=lambda: SimpleNamespace(
            _action_groups={"mtls.rollout.step_ca_sign": ["mtls.rollout.step_ca"]}
        ),
    )
    assert runtime._defaults_by_hand(task, FakeTemplar()) == {
        "ca_url": "HTTPS://MODULE",
        "retries": 1,
    }


def test_the_default_root_cache_is_under_ansible_home(monkeypatch):
    monkeypatch.setattr(runtime.C, "ANSIBLE_HOME", "/tmp/ansible-home-test")
    assert runtime.default_root_cache() == "/tmp/ansible-home-test/mtls_rollout/roots"
