# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The certificate role's root fetch against the real step-ca: trusted only by fingerprint."""

from __future__ import annotations

import pytest
from mtls_testlib import make_ca

from ansible_collections.mtls.rollout.plugins.module_utils import _crypto, _stepca
from ansible_collections.mtls.rollout.plugins.plugin_utils import _root_cache


def test_fetch_from_a_real_step_ca_is_pinned(step_ca):
    assert _root_cache.fetch(step_ca.url, step_ca.root_fingerprint, 5, 0) == step_ca.root_pem
    other = make_ca("Other").root
    with pytest.raises(_stepca.StepCAError, match="fingerprint"):
        _root_cache.fetch(step_ca.url, _crypto.certificate_fingerprint(other), 5, 0)
