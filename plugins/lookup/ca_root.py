# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ca_root lookup: a CA's root certificate, pinned by its fingerprint, from the
controller's root cache or else from the CA."""

from __future__ import annotations

DOCUMENTATION = r"""
name: ca_root
short_description: A step-ca root certificate pinned by its SHA-256 fingerprint
version_added: 0.1.0
description:
  - Returns the PEM of the root certificate with each given fingerprint, as the
    C(mtls.rollout.certificate) role gets it - from the controller's root cache
    (O(cache_dir), checked against the fingerprint on every read), or else from the CA's
    C(/root/<fingerprint>) endpoint over TLS verified against that same root, trusted only if
    its SHA-256 is the fingerprint, and then kept in the cache.
  - The C(mtls.rollout.revoke) playbook uses it to check, on the controller, that the certificate
    a host reports chains to the root pinned for that host.
options:
  _terms:
    description:
      - Root fingerprints, hex SHA-256 (64 digits, colons and a C(sha256:) prefix allowed), or
        lists of them.
    required: true
    type: list
    elements: str
  url:
    description: The CA's URL (C(https://...)), asked when a root is not in the cache.
    type: str
    required: true
  cache_dir:
    description:
      - The controller's root cache, the role's C(certificate_ca_root_cache_dir).
      - Empty is C(<ANSIBLE_HOME>/mtls_rollout/roots), the role's default.
    type: str
    default: ""
  timeout:
    description: Seconds to wait for each answer of the CA.
    type: float
    default: 10
  retries:
    description: How many times a failed request to the CA is tried again.
    type: int
    default: 3
"""

EXAMPLES = r"""
---
- name: Check that a certificate chains to the pinned root
  ansible.builtin.set_fact:
    root_pem: >-
      {{ lookup('mtls.rollout.ca_root', certificate_ca_root_fingerprint, url=certificate_ca_url) }}
"""

RETURN = r"""
_raw:
  description: The PEM of each root, in the order of the fingerprints.
  type: list
  elements: str
"""

from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.mtls.rollout.plugins.module_utils import _stepca
from ansible_collections.mtls.rollout.plugins.plugin_utils import _role_runtime, _root_cache


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: Any = None, **kwargs: Any) -> list[str]:
        self.set_options(var_options=variables, direct=kwargs)
        url = str(self.get_option("url") or "").rstrip("/")
        cache = self.get_option("cache_dir") or _role_runtime.default_root_cache()
        roots = []
        flat: list[Any] = []
        for term in terms:
            flat.extend(term if isinstance(term, (list, tuple)) else [term])
        for term in flat:
            try:
                fingerprint = _stepca.normalize_fingerprint(str(term))
            except _stepca.StepCAError:
                raise AnsibleLookupError(
                    f"ca_root: {term!r} is not a SHA-256 fingerprint (64 hex digits)"
                ) from None
            try:
                pem, _source = _root_cache.obtain(
                    cache,
                    url,
                    fingerprint,
                    float(self.get_option("timeout")),
                    int(self.get_option("retries")),
                )
            except _root_cache.RootCacheError as exc:
                raise AnsibleLookupError(
                    f"Cannot get the root certificate of {url} pinned by fingerprint"
                    f" {fingerprint}: {exc}"
                ) from None
            roots.append(pem)
        return roots
