#!/usr/bin/python
# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# The action plugin of the same name does the work; this file documents it.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: certificate_role_sign
short_description: The certificate role's signing step - one step_ca_sign call per signing group
version_added: 0.2.0
description:
  - Internal to the C(mtls.rollout.certificate) role; not meant to be called on its own.
  - Runs for every host, delegated to the host's C(certificate_signer), after
    M(mtls.rollout.certificate_role_plan) ran on every host of the batch. It takes no options;
    it reads the plan results the hosts registered as C(__certificate_plan).
  - A host that needs nothing signed returns at once (skipped).
  - For each signing group (signer, CA URL, root fingerprint, provisioner) of the current
    C(serial) batch (C(ansible_play_batch)), the first host with requests in it and the same
    settings key for it (password, workers, timeout, retries) signs the group's hosts that
    have that settings key - only plans made by the same task count, so a host the role
    skipped, or one that ran it in an earlier C(include_role), does not. Hosts of a group
    with other settings are signed apart, by one of their own.
  - That host executes M(mtls.rollout.step_ca_sign) once for them on its signer, with its
    own password. Results are per item.
  - Then, on the controller, it adds every issued certificate to its host's issuance record
    (the C(issued_file) of the host's plan, the role's C(certificate_issued_file)), under a lock,
    merged with what the file holds, and replaced atomically. A certificate that cannot be
    recorded gets a failed outcome instead, so that its host does not install it.
  - Run it with C(no_log), since the password passes through it to M(mtls.rollout.step_ca_sign).
author:
  - mtls.rollout maintainers (!UNKNOWN)
attributes:
  action:
    support: full
    description: Runs on the controller and executes M(mtls.rollout.step_ca_sign) on the signer.
  check_mode:
    support: full
    description: In check mode no host has requests, so nothing is signed.
  diff_mode:
    support: none
    description: Signing has nothing to compare.
  idempotent:
    support: none
    description: Each call issues new certificates for the requests it finds.
options: {}
seealso:
  - module: mtls.rollout.certificate_role_plan
  - module: mtls.rollout.step_ca_sign
"""

EXAMPLES = r"""
---
- name: The role's signing step (see roles/certificate/tasks/main.yml)
  mtls.rollout.certificate_role_sign: {}
  delegate_to: "{{ certificate_signer }}"
  become: false
  no_log: true
  register: __certificate_signed
"""

RETURN = r"""
run:
  description: The run token of the plan this step used.
  returned: always
  type: str
leaders:
  description: For each signing group of this host's requests, the host that signs it.
  returned: always
  type: dict
led:
  description: The groups this host signed.
  returned: always
  type: list
  elements: str
outcomes:
  description:
    - On the signing host, per host and item, C(ok) with C(fullchain), C(serial_hex) and
      C(not_after), or C(ok) false with C(msg) (and C(unrecorded) when step-ca issued it but
      the issuance record could not be written).
  returned: always
  type: dict
"""
