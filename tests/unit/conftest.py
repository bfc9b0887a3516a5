# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared fixtures: the collection on sys.path, a small real test CA, and a module runner.

``ansible_collections.mtls.rollout`` imports resolve through
``build/collections/ansible_collections/mtls/rollout``, a symlink to this checkout (made
here when missing, as ``make venv`` does).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
_LINK_ROOT = REPO / "build" / "collections"
_LINK = _LINK_ROOT / "ansible_collections" / "mtls" / "rollout"
if not _LINK.exists():
    _LINK.parent.mkdir(parents=True, exist_ok=True)
    _LINK.symlink_to(os.path.relpath(REPO, _LINK.parent))
for _path in (str(_LINK_ROOT), str(Path(__file__).parent)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from ansible.module_utils.testing import patch_module_args
from mtls_testlib import CA, make_ca


@pytest.fixture(scope="session")
def test_ca() -> CA:
    return make_ca("Test")


@pytest.fixture(scope="session")
def other_ca() -> CA:
    return make_ca("Other")


@pytest.fixture
def run_module(capsys, monkeypatch):
    """Run a module's ``main()`` in-process and return its JSON result.

    ``run_module(module, args, check=False, diff=True)``; failures come back with
    ``failed: true`` like in a playbook.
    """
    # Importing any controller-side code (a filter plugin's tests do) marks the
    # process as the controller, and module warnings then go to the display
    # instead of the result. A module runs on a managed host: say so.
    from ansible.module_utils import _internal

    monkeypatch.setattr(_internal, "is_controller", False)

    def run(module: Any, args: dict[str, Any], check: bool = False, diff: bool = True) -> dict:
        full = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
        capsys.readouterr()
        with patch_module_args(full), pytest.raises(SystemExit):
            module.main()
        out = capsys.readouterr().out
        return json.loads(out)

    return run
