# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The revocation_targets filter: what mtls.rollout.revoke revokes, found in the fleet."""

from __future__ import annotations

DOCUMENTATION = r"""
name: revocation_targets
short_description: Resolve what to revoke, without trusting what a host says it holds
version_added: 0.1.0
description:
  - The C(mtls.rollout.revoke) playbook's first step. Takes the M(mtls.rollout.certificate_report)
    results of the hosts that were read, the items as the inventory defines them, and the
    certificate role's issuance record, and returns every certificate to revoke, once, with the host
    and item it belongs to, its subject and C(not_after), and what could not be revoked.
  - By O(host) and O(item) (or O(person), an item of O(people_host)), it takes every unexpired
    certificate the issuance record (O(issued)) holds for them, plus the certificate the host
    reports only if it verifies - it chains to a root of O(anchors) for that host, its subject,
    SANs and profile are exactly the item's in O(items), and, when the record holds certificates of
    the item, its public key is one of theirs. Only the reported PEM is read; nothing else the host
    says is used. A report that fails is in C(refused); a host that did not answer is resolved from
    the record alone, with a warning.
  - A serial may be given in any unambiguous form (a decimal integer, hex with a letter as NGINX's
    C($ssl_client_serial) shows it, with C(0x), or in two-digit groups with colons). A string of
    digits only is read both ways, and taken when exactly one reading is the serial of a
    certificate of the fleet or the record. The record says whose a serial is.
  - A serial that neither a host nor the record holds is an error unless O(allow_unknown) is set,
    since step-ca revokes any serial it is given and a typo would leave the real certificate valid.
  - An item the inventory does not give the host, an unknown person, or a host that did not answer
    while the record holds nothing for it are errors that name what is known instead.
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
    description: Hosts that were asked and gave no report (unreachable, or their connection failed).
    type: list
    elements: str
  allow_unknown:
    description: Revoke serials that neither a host nor the record holds.
    type: bool
    default: false
  items:
    description:
      - Each host mapped to its certificate items as the inventory defines them
        (C(certificate_items), and the people's items on the people host). The host's report is
        checked against them.
    type: dict
  issued:
    description:
      - The issuance record's entries (P(mtls.rollout.issued_certificates#filter)). Empty or
        missing, reports are checked without their key, with a warning.
    type: list
    elements: dict
  anchors:
    description:
      - Each host mapped to the PEMs of the roots pinned for it (its CA's root, and the transition
        roots of a root rotation), for example from the P(mtls.rollout.ca_root#lookup) lookup.
    type: dict
  now:
    description: The time expiry is judged at (UTC, C(2026-12-31T12:00:00Z)); default now.
    type: str
"""

EXAMPLES = r"""
---
- name: Resolve a host's certificate to its serials
  ansible.builtin.set_fact:
    resolved: >-
      {{ {'client': report_of_client}
         | mtls.rollout.revocation_targets(host='client', item='worker',
             items={'client': certificate_items}, issued=issued_record,
             anchors={'client': query('mtls.rollout.ca_root', fingerprint, url=ca_url)}) }}
"""

RETURN = r"""
_value:
  description:
    - C(targets), each with C(serial), C(host), C(item), C(subject), C(not_after), C(profile),
      C(found) and C(source) (C(host) - the host's verified certificate, C(record) - from the
      issuance record alone, C(report) - a serial a host holds, or none); C(errors), which stop the
      run before anything is revoked; C(refused), the reports that failed verification (not
      revoked; the run fails at the end); and C(warnings), what could not be checked.
  type: dict
"""

from ansible_collections.mtls.rollout.plugins.plugin_utils._revocation_targets import (
    revocation_targets,
)


class FilterModule:
    def filters(self) -> dict:
        return {"revocation_targets": revocation_targets}
