# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The revocation_merge filter: the controller's revocation list with more entries."""

from __future__ import annotations

DOCUMENTATION = r"""
name: revocation_merge
short_description: Add revoked certificates to the controller's revocation list text
version_added: 0.1.0
description:
  - Returns the text of the revocation list (see P(mtls.rollout.revocation_list#filter)) with the
    given entries appended, each serial once. The C(mtls.rollout.revoke) playbook writes the result
    with M(ansible.builtin.copy), atomically.
  - A serial already on the list keeps its entry as it is (the date and reason of its first
    revocation). When nothing is new, the input text comes back unchanged, byte for byte, so that
    writing it changes nothing. Otherwise the whole list is written in the canonical form, after a
    comment that says what the file is.
  - Fails, naming the problem, when the current text is not a valid list or an entry has no
    serial or an unknown key.
options:
  _input:
    description: The current text of the list; empty when there is no file yet.
    type: str
    required: true
  additions:
    description:
      - Entries to add. Each needs C(serial), in any form M(mtls.rollout.step_ca_revoke) accepts
        (its C(serial_hex) result, or a decimal integer), and may have C(subject), C(reason),
        C(reason_code), C(revoked_at), C(not_after), C(host), C(item) and C(comment).
    type: list
    elements: dict
    required: true
  source:
    description: What to call the text in error messages, normally the file's path.
    type: str
    default: revocation list
seealso:
  - plugin: mtls.rollout.revocation_list
    plugin_type: filter
"""

EXAMPLES = r"""
---
- name: Add a revoked serial to the list
  ansible.builtin.copy:
    content: >-
      {{ lookup('ansible.builtin.file', list_path, errors='ignore') | default('', true)
         | mtls.rollout.revocation_merge([{'serial': revoked.serial_hex, 'subject': revoked.subject,
                                          'revoked_at': now(utc=true).isoformat()}], list_path) }}
    dest: "{{ list_path }}"
    mode: "0644"
  delegate_to: localhost
"""

RETURN = r"""
_value:
  description: The new text of the list.
  type: str
"""

from ansible_collections.mtls.rollout.plugins.plugin_utils._revocation_list import (
    merge_revocation_list,
)


class FilterModule:
    def filters(self) -> dict:
        return {"revocation_merge": merge_revocation_list}
