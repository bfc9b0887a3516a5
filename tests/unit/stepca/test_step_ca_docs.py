# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The documented options of step_ca_sign and step_ca_info match their argument specs."""

from __future__ import annotations

import pytest
from conftest import assert_documented_as_specified

from ansible_collections.mtls.rollout.plugins.module_utils import _stepca_modules


@pytest.mark.parametrize(
    ("module", "spec"),
    [
        ("step_ca_sign", _stepca_modules.SIGN_ARGUMENT_SPEC),
        ("step_ca_info", _stepca_modules.INFO_ARGUMENT_SPEC),
    ],
)
def test_documentation_matches_argument_spec(module, spec):
    assert_documented_as_specified(module, spec, elements=True)
    for name, arg in spec.items():
        if "password" in name and not name.endswith("_file"):
            assert arg.get("no_log") is True, name
