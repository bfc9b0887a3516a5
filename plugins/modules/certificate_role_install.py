#!/usr/bin/python
# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# The action plugin of the same name does the work; this file documents it.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: certificate_role_install
short_description: The certificate role's install step on a host
version_added: 0.2.0
description:
  - Internal to the C(mtls.rollout.certificate) role; not meant to be called on its own.
  - Finds this host's outcomes at the hosts that signed its groups, and executes
    M(mtls.rollout.certificate_install) on the host only when something was issued. That
    module checks each certificate against its item before it writes it.
  - Notifies the role's C(certificate_notify) and the item's C(notify) for each certificate
    that changed, and says why each certificate was signed.
  - Never fails. What this host did not get, with the CA's reasons, is in RV(failures), which
    the role's next task turns into the host's failure (a failed task would notify nothing).
  - In check mode, reports the certificates a real run would sign, and why.
author:
  - mtls.rollout maintainers (!UNKNOWN)
attributes:
  action:
    support: full
    description: Runs on the controller; executes M(mtls.rollout.certificate_install) on the host.
  check_mode:
    support: full
    description: Reports what would be signed; installs nothing.
  diff_mode:
    support: none
    description: The plan step shows the diff.
  idempotent:
    support: full
    description: Installs only what the signing step issued in this run.
options:
  trust_bundle_path:
    description: The role's C(certificate_trust_bundle_path).
    type: str
    required: true
seealso:
  - module: mtls.rollout.certificate_install
  - module: mtls.rollout.certificate_role_sign
"""

EXAMPLES = r"""
---
- name: The role's install step (see roles/certificate/tasks/main.yml)
  mtls.rollout.certificate_role_install:
    trust_bundle_path: /etc/ssl/mtls/ca-bundle.pem
  register: __certificate_installed
"""

RETURN = r"""
changed_items:
  description: Names of the items whose certificate (and staged key) were installed.
  returned: always
  type: list
  elements: str
certificates:
  description:
    - The certificates that changed, each with C(name), C(cert_path), C(key_path), C(serial)
      (as NGINX shows it) and C(not_after) - what a later step (a service reload, a renewal
      timer) needs to know.
  returned: always
  type: list
  elements: dict
failures:
  description: One line per certificate this host did not get, with the reason.
  returned: when there is one
  type: list
  elements: str
msg:
  description:
    - Why each installed certificate was signed (in check mode, each that would be).
  returned: when something was installed, or would be in check mode
  type: list
  elements: str
"""
