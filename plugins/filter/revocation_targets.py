# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The revocation_targets filter: what mtls.rollout.revoke revokes, found in the fleet."""

from __future__ import annotations

DOCUMENTATION = r"""
name: revocation_targets
short_description: Resolve what to revoke against the certificates the fleet holds
version_added: 0.1.0
description:
  - The C(mtls.rollout.revoke) playbook's first step. Takes the M(mtls.rollout.certificate_report)
    results of the fleet's hosts and returns every certificate to revoke, once, with the host and
    item that hold it, its subject and C(not_after), and the clear errors for what cannot be
    revoked.
  - A serial may be given in any unambiguous form (a decimal integer, hex with a letter as NGINX's
    C($ssl_client_serial) shows it, with C(0x), or in two-digit groups with colons). A string of
    digits only is read both ways, and taken when exactly one reading is the serial of a
    certificate of the fleet.
  - A serial that no host holds is an error unless O(allow_unknown) is set, since step-ca
    revokes any serial it is given and a typo would leave the real certificate valid.
  - A host and item name that hold no certificate, an unknown person, or a host that did not
    answer are errors that name what is known instead.
options:
  _input:
    description: Each host that was read, mapped to its M(mtls.rollout.certificate_report) result.
    type: dict
    required: true
  serials:
    description: Serials to revoke.
    type: list
    elements: raw
  host:
    description: Inventory host of the certificate to revoke, with O(item).
    type: str
  item:
    description: Name of the host's C(certificate_items) entry to revoke, with O(host).
    type: str
  person:
    description: A person of C(mtls_people) to revoke, by name, id or email.
    type: str
  people:
    description: The result of the P(mtls.rollout.people#filter) filter.
    type: list
    elements: dict
  people_host:
    description: C(mtls_people_host), where the people's certificates are.
    type: str
  unreachable:
    description: Hosts that did not answer, for the error messages.
    type: list
    elements: str
  allow_unknown:
    description: Revoke serials that no host holds (a certificate replaced since, for example).
    type: bool
    default: false
"""

EXAMPLES = r"""
---
- name: Resolve a host's certificate to its serial
  ansible.builtin.set_fact:
    resolved: >-
      {{ {'client': report_of_client}
         | mtls.rollout.revocation_targets(host='client', item='worker') }}
"""

RETURN = r"""
_value:
  description:
    - C(targets), each with C(serial), C(host), C(item), C(subject), C(not_after), C(profile) and
      C(found), and C(errors), the messages.
  type: dict
"""

from ansible_collections.mtls.rollout.plugins.plugin_utils._revocation_targets import (
    revocation_targets,
)


class FilterModule:
    def filters(self) -> dict:
        return {"revocation_targets": revocation_targets}
