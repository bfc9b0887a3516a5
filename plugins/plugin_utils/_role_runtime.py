# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the ``certificate`` role's action plugins need from ansible-core at run time.

Kept apart from the role's logic (:mod:`._certificate_role`), because these lean on
ansible-core's runtime objects:

* :func:`registered`: another host's registered result, read straight from the variable
  manager's store of registered results (a dictionary look-up; ``hostvars[host]`` would
  compute all of that host's variables, about a millisecond a host). Falls back to
  ``hostvars`` when the store is not where ansible-core keeps it today;
* :func:`fact_names`: the variables a host's facts define (they outrank the inventory);
* :func:`step_ca_defaults`: the options ``module_defaults`` give ``step_ca_sign``, for
  example through ``group/mtls.rollout.step_ca``, templated for this host;
* :func:`strategy_problem`: the role needs the ``linear`` strategy (or one built on it),
  where every host finishes a task before any host starts the next;
* :func:`run_folder`: this ``ansible-playbook`` run's private local temporary folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ansible import constants as C

STEP_CA_SIGN = "mtls.rollout.step_ca_sign"


def registered(task_vars: Mapping[str, Any], host: str, name: str) -> Any:
    """The value ``host`` registered as ``name`` (``None`` when it has none)."""
    hostvars = task_vars.get("hostvars")
    manager = getattr(hostvars, "_variable_manager", None)
    store = getattr(manager, "_nonpersistent_fact_cache", None)
    if isinstance(store, Mapping):
        return (store.get(host) or {}).get(name)
    if hostvars is None or host not in hostvars:
        return None
    return hostvars.raw_get(host).get(name)


def fact_names(task_vars: Mapping[str, Any], host: str) -> list[str]:
    """The names ``host``'s facts define as top-level variables (none when ansible-core does
    not inject facts as variables). Facts are what the host's own modules reported (or a
    ``set_fact`` with ``cacheable: true``), and they outrank inventory variables."""
    if not C.INJECT_FACTS_AS_VARS:
        return []
    hostvars = task_vars.get("hostvars")
    manager = getattr(hostvars, "_variable_manager", None)
    store = getattr(manager, "_fact_cache", None)
    if store is not None:
        try:
            facts = store.get(host) or {}
        except KeyError:
            facts = {}
    else:  # ansible_facts holds the same names, less an ansible_ prefix
        facts = task_vars.get("ansible_facts") or {}
    return [str(name) for name in facts] if isinstance(facts, Mapping) else []


def step_ca_defaults(task: Any, templar: Any) -> dict[str, Any]:
    """``module_defaults`` for ``mtls.rollout.step_ca_sign`` (group and module entries)."""
    try:
        from ansible.executor.module_common import _apply_action_arg_defaults
    except ImportError:  # not in this ansible-core: read them the documented way
        return _defaults_by_hand(task, templar)
    return dict(_apply_action_arg_defaults(STEP_CA_SIGN, task, {}, templar))


def _defaults_by_hand(task: Any, templar: Any) -> dict[str, Any]:
    groups = (getattr(task.get_play(), "_action_groups", None) or {}).get(STEP_CA_SIGN, [])
    merged: dict[str, Any] = {}
    for entry in task.module_defaults or []:
        merged.update(entry)
    found: dict[str, Any] = {}
    for name, values in merged.items():
        if name.startswith("group/") and name[len("group/") :] in groups:
            found.update(values)
    found.update(merged.get(STEP_CA_SIGN, {}))
    return templar.template(found)


def strategy_problem(task: Any) -> str | None:
    """Why the play's strategy cannot run the role, or ``None`` when it can."""
    from ansible.plugins.loader import strategy_loader
    from ansible.plugins.strategy.linear import StrategyModule as Linear

    name = getattr(task.get_play(), "strategy", None) or C.DEFAULT_STRATEGY
    short = name
    for prefix in ("ansible.builtin.", "ansible.legacy."):
        if short.startswith(prefix):
            short = short[len(prefix) :]
    strategy = strategy_loader.get(short, class_only=True)
    if strategy is not None and issubclass(strategy, Linear):
        return None
    return (
        "The certificate role needs the linear strategy (or one built on it, such as debug):"
        " every host must have made its CSRs before one of them signs for all, and must wait"
        f" for that signature. This play uses the {name!r} strategy; run the role in a play"
        " with strategy: linear (the default)."
    )


def run_folder() -> str:
    """This run's private local temporary folder (ansible-core removes it at the end)."""
    return str(C.DEFAULT_LOCAL_TMP)


def default_root_cache() -> str:
    """``<ANSIBLE_HOME>/mtls_rollout/roots``: where the controller keeps CA roots."""
    home = getattr(C, "ANSIBLE_HOME", None) or os.path.expanduser("~/.ansible")
    return os.path.join(str(home), "mtls_rollout", "roots")
