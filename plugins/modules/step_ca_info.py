#!/usr/bin/python
# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: step_ca_info
short_description: Health, version, pinned root and provisioners of a step-ca server
version_added: 0.1.0
description:
  - Reads step-ca's public API over TLS verified against a pinned root.
  - With only O(root_fingerprint), fetches the root from C(/root/<fingerprint>) and
    trusts it only if its SHA-256 matches; the result's RV(root_certificate) can then be
    installed as the trust bundle on hosts.
  - Checks that the pinned root is among the CA's C(/roots).
  - Lists the provisioners with their names, types, key ids and claims. Encrypted keys
    are never returned.
  - Can wait, for a bounded time, until the CA answers C(/health) with C(ok).
author:
  - mtls.rollout maintainers (!UNKNOWN)
extends_documentation_fragment:
  - mtls.rollout.ca_connection
attributes:
  check_mode:
    support: full
    description: Only reads, so it runs the same in check mode.
    details:
      - The module only reads, so it runs the same in check mode.
  diff_mode:
    support: none
    description: Only reads; there is nothing to compare.
  idempotent:
    support: full
    description: Only reads.
options:
  provisioner:
    description:
      - Ignored. Accepted so that C(module_defaults) for C(group/mtls.rollout.step_ca)
        can set it for M(mtls.rollout.step_ca_sign) and M(mtls.rollout.step_ca_revoke).
    type: str
  provisioner_password:
    description:
      - Ignored, never used or returned; accepted for the same reason as O(provisioner).
    type: str
  provisioner_password_file:
    description:
      - Ignored, the file is not read; accepted for the same reason as O(provisioner).
    type: path
  wait_timeout:
    description:
      - Seconds to wait for C(/health) to answer C(ok) (at most 3600). C(0) checks once.
      - Connection errors are retried until then; a root fingerprint mismatch or a TLS
        verification failure fails at once.
    type: float
    default: 0
  wait_interval:
    description: Seconds between two health checks while waiting.
    type: float
    default: 1
  provisioners:
    description: Whether to list the provisioners.
    type: bool
    default: true
seealso:
  - module: mtls.rollout.step_ca_sign
"""

EXAMPLES = r"""
---
- name: Wait up to a minute for the CA and fetch its root by fingerprint
  mtls.rollout.step_ca_info:
    ca_url: https://ca.example.com:9000
    root_fingerprint: "{{ step_ca_root_fingerprint }}"
    wait_timeout: 60
  delegate_to: localhost
  run_once: true
  register: ca

- name: Install the CA root as the trust bundle
  ansible.builtin.copy:
    content: "{{ ca.root_certificate }}"
    dest: /etc/ssl/mtls/ca.pem
    mode: "0644"

- name: Fail early when a provisioner is missing
  ansible.builtin.assert:
    that: "'clients' in ca.provisioners | map(attribute='name')"
"""

RETURN = r"""
health:
  description: The answer of C(/health).
  returned: success
  type: dict
  sample: {"status": "ok"}
version:
  description: The CA's version.
  returned: success
  type: str
  sample: 0.19.0
root_certificate:
  description: The pinned root certificate in PEM, verified against the fingerprint.
  returned: success
  type: str
root_fingerprint:
  description: SHA-256 fingerprint (lower-case hex) of the pinned root.
  returned: success
  type: str
roots:
  description: Every root the CA serves (C(/roots)), each with C(subject), C(fingerprint),
    C(not_after) and C(pem).
  returned: success
  type: list
  elements: dict
provisioners:
  description:
    - The CA's provisioners, each with C(name), C(type), C(kid) and C(claims).
    - Never includes encrypted keys.
  returned: success when O(provisioners=true)
  type: list
  elements: dict
  sample:
    - name: clients
      type: JWK
      kid: QbZ6a296KYxWDgoy_fIuuD84Md28hC6meN4qg8ulVco
      claims: {"minTLSCertDuration": "5m0s", "maxTLSCertDuration": "24h0m0s"}
error_kind:
  description: On failure, the cause (see M(mtls.rollout.step_ca_sign)).
  returned: failure
  type: str
"""

from ansible_collections.mtls.rollout.plugins.module_utils import _stepca_modules as backend


def main() -> None:
    backend.run_module(
        backend.INFO_ARGUMENT_SPEC, backend.MODULE_CONNECTION_RULES, backend.run_info
    )


if __name__ == "__main__":
    main()
