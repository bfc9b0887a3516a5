"""Record where the collection mtls.rollout was loaded from (embedded scenario).

For each playbook run (Molecule's own create and destroy playbooks, prepare, and
the site's playbook in converge, idempotence and check), appends one JSON line
to $MTLS_PROVENANCE_LOG with the playbook, the collection search path, and the
file or folder every mtls.rollout role, module and filter came from. Roles are
loaded in this process; modules and filters are used by the forked workers,
which inherit this process's plugin loaders, so they are resolved here through
the same loaders. tests/test_embedded.py checks that all of them are in the
throwaway install and none in the checkout.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys

from ansible import constants as C
from ansible.plugins.callback import CallbackBase
from ansible.plugins.loader import filter_loader, module_loader

DOCUMENTATION = """
name: provenance
type: aggregate
short_description: Record where mtls.rollout's roles, modules and plugins were loaded from
description:
  - Writes one JSON line per playbook run to the file named by the MTLS_PROVENANCE_LOG
    environment variable.
requirements:
  - enabled with ANSIBLE_CALLBACKS_ENABLED=provenance
"""

PREFIX = "mtls.rollout."
NAME = re.compile(r"mtls\.rollout\.[a-z0-9_]+")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "provenance"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._playbook = ""
        self._roles: dict[str, str] = {}
        self._modules: dict[str, str] = {}
        self._filters: dict[str, str] = {}

    def v2_playbook_on_start(self, playbook) -> None:
        self._playbook = os.path.abspath(playbook._file_name)

    def _record(self, task) -> None:
        role = getattr(task, "_role", None)
        if role is not None and role.get_name().startswith(PREFIX):
            self._roles[role.get_name()] = role._role_path
        action = task.resolved_action or task.action
        if action.startswith(PREFIX) and action not in self._modules:
            found = module_loader.find_plugin_with_context(action)
            self._modules[action] = found.plugin_resolved_path if found.resolved else ""
        # Filters named in the task's own text (its arguments, when, loop, ...).
        for name in set(NAME.findall(repr(task._ds))) - set(self._filters) - set(self._modules):
            found = filter_loader.find_plugin_with_context(name)
            if found.resolved:
                self._filters[name] = found.plugin_resolved_path

    def v2_playbook_on_task_start(self, task, is_conditional) -> None:
        self._record(task)

    def v2_playbook_on_handler_task_start(self, task) -> None:
        self._record(task)

    def v2_playbook_on_stats(self, stats) -> None:
        # Imported through the collection finder this process runs with, as the roles and
        # plugins were: its path is where the collection resolved to.
        package = importlib.import_module("ansible_collections.mtls.rollout")
        python = sorted(
            module.__file__
            for name, module in list(sys.modules.items())
            if name.startswith("ansible_collections.mtls.rollout")
            and getattr(module, "__file__", None)
        )
        record = {
            "playbook": self._playbook,
            "collections_paths": list(C.COLLECTIONS_PATHS),
            "package_paths": list(getattr(package, "__path__", [])),
            "roles": self._roles,
            "modules": self._modules,
            "filters": self._filters,
            "python": python,
        }
        with open(os.environ["MTLS_PROVENANCE_LOG"], "a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")
