#!/usr/bin/python
# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# The action plugin of the same name does the work; this file documents it.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: certificate_role_plan
short_description: The certificate role's first step on a host - plan, and make the CSRs needed
version_added: 0.2.0
description:
  - Internal to the C(mtls.rollout.certificate) role, which passes it the role's variables; not
    meant to be called on its own. Documented so that its result can be read.
  - "Runs on the controller (an action plugin): fills in the defaults of each
    O(items) entry and checks them; takes the CA from O(ca_url) and O(root_fingerprint), or,
    when they are empty, from C(module_defaults) for C(group/mtls.rollout.step_ca)
    (C(ca_url), C(root_fingerprint), C(timeout), C(retries)); refuses a play whose strategy
    is not C(linear) or built on it."
  - Gets the CA's root from the controller's cache in O(root_cache_dir) (checked against
    the pinned fingerprint on every read), or else once from the CA's C(/root/<fingerprint>)
    endpoint, and keeps it there.
  - Executes M(mtls.rollout.certificate_plan) on the host. When the host lacks Python
    C(cryptography), installs C(python3-cryptography) with apt and executes it again; in
    check mode it reports what would be installed and signed instead.
  - Returns the signing requests for the items that need signing - the CSR made on the host,
    and the common name, SANs and lifetime from the inventory - and, per signing group
    (signer, CA URL, root fingerprint, provisioner), this host's settings key (workers,
    timeout, retries, and an HMAC of the provisioner password under a key of this run; never
    the password). The passwords come from the variables
    C(certificate_ca_provisioner_passwords) and C(certificate_ca_provisioner_password), else
    from C(module_defaults) (C(provisioner_password) or C(provisioner_password_file)).
  - Notifies O(notify) when the trust bundle changed, and an item's C(notify) too when an
    interrupted key swap of that item was finished.
author:
  - mtls.rollout maintainers (!UNKNOWN)
attributes:
  action:
    support: full
    description: Runs on the controller and executes M(mtls.rollout.certificate_plan) on the host.
  check_mode:
    support: full
    description: The host module predicts; no CSR is made and no package installed.
  diff_mode:
    support: full
    description: The host module's diff (parsed facts, never PEM).
  idempotent:
    support: full
    description: Changes what M(mtls.rollout.certificate_plan) changes.
options:
  items:
    description: The role's C(certificate_items).
    type: list
    elements: raw
    default: []
  certificate_dir:
    description: The role's C(certificate_dir).
    type: str
    required: true
  trust_bundle_path:
    description: The role's C(certificate_trust_bundle_path).
    type: str
    required: true
  renew_before:
    description: The role's C(certificate_renew_before).
    type: raw
    default: "0.33"
  provisioners:
    description: The role's C(certificate_ca_provisioners).
    type: dict
    default: {client: clients, server: servers}
  notify:
    description: The role's C(certificate_notify).
    type: list
    elements: str
    default: []
  ca_url:
    description: The role's C(certificate_ca_url); empty takes C(ca_url) from C(module_defaults).
    type: str
    default: ""
  root_fingerprint:
    description:
      - The role's C(certificate_ca_root_fingerprint); empty takes C(root_fingerprint) from
        C(module_defaults).
    type: str
    default: ""
  signer:
    description: The role's C(certificate_signer).
    type: str
    default: localhost
  workers:
    description: The role's C(certificate_sign_workers) (1 to 32).
    type: int
    default: 8
  root_cache_dir:
    description:
      - The role's C(certificate_ca_root_cache_dir), on the controller; empty is
        C(<ANSIBLE_HOME>/mtls_rollout/roots).
    type: str
    default: ""
  renew_timer:
    description: The role's C(certificate_renew_timer), for items that do not set C(renew_timer).
    type: bool
    default: false
  renew_ca_url:
    description: The role's C(certificate_renew_ca_url); empty is the CA URL.
    type: str
    default: ""
  renew_reload:
    description: The role's C(certificate_renew_reload), for items without C(renew_reload).
    type: list
    elements: str
    default: []
  renew_rekey:
    description: The role's C(certificate_renew_rekey), for items without C(rekey).
    type: bool
    default: false
  renew_schedule:
    description: The role's C(certificate_renew_schedule).
    type: str
    default: hourly
  renew_random_delay:
    description: The role's C(certificate_renew_random_delay).
    type: str
    default: 30m
  replace_unreadable_keys:
    description:
      - The role's C(certificate_replace_unreadable_keys), passed to
        M(mtls.rollout.certificate_plan) (its option of the same name).
    type: bool
    default: false
  issued_file:
    description:
      - The role's C(certificate_issued_file), an absolute path on the controller, or empty for
        no issuance record. Returned as RV(issued_file), where the signing step reads it.
    type: str
    default: ""
seealso:
  - module: mtls.rollout.certificate_plan
  - module: mtls.rollout.certificate_role_sign
  - module: mtls.rollout.certificate_role_install
"""

EXAMPLES = r"""
---
- name: The role's first step (see roles/certificate/tasks/main.yml)
  mtls.rollout.certificate_role_plan:
    items: "{{ certificate_items }}"
    certificate_dir: /etc/ssl/mtls
    trust_bundle_path: /etc/ssl/mtls/ca-bundle.pem
    ca_url: https://ca.example.com:9000
    root_fingerprint: "{{ ca_root_fingerprint }}"
  register: __certificate_plan
"""

RETURN = r"""
run:
  description: The run token - the uuid of this task, the same for every host that runs it.
  returned: success
  type: str
items:
  description:
    - M(mtls.rollout.certificate_plan)'s C(items) without their CSRs, each with C(cert_path).
  returned: success
  type: list
  elements: dict
needs_signing:
  description: Names of the items that need signing.
  returned: success
  type: list
  elements: str
trust_bundle_changed:
  description: Whether the trust bundle was (in check mode, would be) written.
  returned: success
  type: bool
requests:
  description:
    - One per item to sign, not in check mode - C(name), C(group), C(csr), C(common_name),
      C(subject_alt_names) and, when the item has one, C(duration).
  returned: success
  type: list
  elements: dict
settings:
  description: Per signing group this host needs, its settings key (no secret).
  returned: success
  type: dict
certificates:
  description: Each item with the role's defaults filled in.
  returned: success
  type: list
  elements: dict
root_source:
  description: Where the root came from - C(cache) or C(ca).
  returned: success
  type: str
issued_file:
  description: O(issued_file), where the signing step records this host's issued certificates.
  returned: success, except in check mode on a host without Python C(cryptography)
  type: str
installed_library:
  description: The package installed because the host lacked it.
  returned: when it was installed
  type: str
missing_library:
  description: In check mode, the package a real run would install first.
  returned: in check mode, on a host without Python cryptography
  type: str
"""
