# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The certificate_table filter: the fleet's certificates as a table sorted by expiry."""

from __future__ import annotations

DOCUMENTATION = r"""
name: certificate_table
short_description: The fleet's certificates as a readable table, soonest expiry first
version_added: 0.1.0
description:
  - Formats the C(certificates) of M(mtls.rollout.certificate_report) results from several hosts
    (each entry with a C(host) key added) as lines of a fixed-width table with the columns
    C(EXPIRES (UTC)), C(DAYS) (whole days left, negative once expired), C(STATUS), C(HOST), C(NAME),
    C(COMMON NAME) and C(SERIAL) (as NGINX's C($ssl_client_serial) shows it, the form
    C(mtls.rollout.revoke) takes).
  - Rows are sorted by C(not_after), soonest first; certificates without a known expiry (missing
    or unreadable) come first. After the table, one line per certificate whose status is not
    C(ok) says why (for C(revoked), that its serial is on the revocation list).
  - The C(mtls.rollout.report) playbook prints it.
options:
  _input:
    description: Certificate entries, each with C(host) added.
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
---
- name: Print the fleet's certificates
  ansible.builtin.debug:
    msg: "{{ entries | mtls.rollout.certificate_table }}"
"""

RETURN = r"""
_value:
  description: The lines of the table, its header first.
  type: list
  elements: str
"""

from ansible_collections.mtls.rollout.plugins.plugin_utils._certificate_table import (
    certificate_table,
)


class FilterModule:
    def filters(self) -> dict:
        return {"certificate_table": certificate_table}
