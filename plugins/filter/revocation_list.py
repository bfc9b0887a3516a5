# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The revocation_list filter: the controller's revocation list (YAML text) as entries."""

from __future__ import annotations

DOCUMENTATION = r"""
name: revocation_list
short_description: Read the controller's revocation list into its entries
version_added: 0.1.0
description:
  - Parses the text of the revocation list that the C(mtls.rollout.revoke) playbook writes and the
    C(nginx_mtls) role reads (C(nginx_mtls_revocation_file), see C(docs/lifecycle.md)).
  - The file is a mapping with one key, C(revoked_certificates), a list of entries. Each entry
    has a C(serial), written as NGINX shows C($ssl_client_serial) (upper-case hex, an even number
    of digits, no leading zero octet, quoted), and optionally C(subject), C(reason), C(reason_code),
    C(revoked_at), C(not_after), C(host), C(item) and C(comment).
  - An empty text (no file yet) gives an empty list. Anything else that is not such a list fails,
    naming the entry and the problem, so that a typo never silently lets a revoked certificate in.
    So are unknown keys, a serial in another form (a decimal number, colons, lower case), and two
    entries for one serial.
  - P(mtls.rollout.revocation_merge#filter) is the writer of the same format.
options:
  _input:
    description: The file's text, for example C(lookup('ansible.builtin.file', path)).
    type: str
    required: true
  source:
    description: What to call the text in error messages, normally the file's path.
    type: str
    default: revocation list
seealso:
  - plugin: mtls.rollout.revocation_merge
    plugin_type: filter
"""

EXAMPLES = r"""
---
- name: Read the revocation list
  ansible.builtin.set_fact:
    revoked: "{{ lookup('ansible.builtin.file', '/srv/inventory/revoked-certificates.yml')
                 | mtls.rollout.revocation_list('/srv/inventory/revoked-certificates.yml') }}"

- name: Print the revoked serials
  ansible.builtin.debug:
    msg: "{{ revoked | map(attribute='serial') | list }}"
"""

RETURN = r"""
_value:
  description: The entries in file order, each a mapping with at least C(serial) (NGINX's form).
  type: list
  elements: dict
"""

from ansible_collections.mtls.rollout.plugins.plugin_utils._revocation_list import (
    parse_revocation_list,
)


class FilterModule:
    def filters(self) -> dict:
        return {"revocation_list": parse_revocation_list}
