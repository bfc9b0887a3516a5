# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the options every module that talks to step-ca shares."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  ca_url:
    description:
      - URL of the step-ca server, for example C(https://ca.example.com:9000).
      - The host name must be one of the CA's C(dnsNames); its one-time tokens are issued
        for C(<ca_url>/1.0/sign).
    type: str
    required: true
  root:
    description:
      - Path (on the controller) of the CA's root certificate in PEM.
      - TLS to the CA is verified against this root only.
      - With O(root_fingerprint) as well, both must name the same certificate.
      - One of O(root) and O(root_fingerprint) is required.
    type: path
  root_fingerprint:
    description:
      - SHA-256 fingerprint of the CA's root certificate (hex, colons and case ignored),
        as C(step certificate fingerprint) prints it.
      - Without O(root), the root is fetched once from C(/root/<fingerprint>) without TLS
        verification and trusted only if its fingerprint matches; a mismatch fails closed.
        Every other request is verified against that root.
    type: str
  timeout:
    description: Seconds to wait for each HTTP request to the CA.
    type: float
    default: 10
  retries:
    description:
      - How often to retry a request after a connection error or a 5xx answer, with
        exponential backoff (0.5s, 1s, 2s, ... at most 8s). At most 10.
      - Refusals (4xx) are never retried.
    type: int
    default: 3
attributes:
  action_group:
    description:
      - Use C(group/mtls.rollout.step_ca) in C(module_defaults) to set the CA connection
        and provisioner options once for M(mtls.rollout.step_ca_info),
        M(mtls.rollout.step_ca_sign) and M(mtls.rollout.step_ca_revoke).
    support: full
    membership:
      - mtls.rollout.step_ca
notes:
  - There is no option to skip TLS verification.
requirements:
  - cryptography on the host the module runs on (usually the controller)
"""
