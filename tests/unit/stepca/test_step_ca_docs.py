# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The documented options of step_ca_sign and step_ca_info match their argument specs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from ansible_collections.mtls.rollout.plugins.module_utils import _stepca


@pytest.mark.parametrize(
    ("module", "spec"),
    [("step_ca_sign", _stepca.SIGN_ARGUMENT_SPEC), ("step_ca_info", _stepca.INFO_ARGUMENT_SPEC)],
)
def test_documentation_matches_argument_spec(module, spec):
    ansible_doc = shutil.which("ansible-doc", path=str(Path(sys.executable).parent))
    if ansible_doc is None:
        pytest.skip("ansible-doc is not installed next to this Python")
    proc = subprocess.run(
        [ansible_doc, "--json", f"mtls.rollout.{module}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)[f"mtls.rollout.{module}"]["doc"]
    options = doc["options"]
    assert set(options) == set(spec)
    for name, arg in spec.items():
        documented = options[name]
        assert documented.get("type") == arg.get("type"), name
        assert documented.get("default") == arg.get("default"), name
        assert bool(documented.get("required")) == bool(arg.get("required")), name
        assert documented.get("elements") == arg.get("elements"), name
    for name, arg in spec.items():
        if "password" in name and not name.endswith("_file"):
            assert arg.get("no_log") is True, name
