# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The issued_certificates filter: the controller's issuance record (YAML text) as entries."""

from __future__ import annotations

DOCUMENTATION = r"""
name: issued_certificates
short_description: Read the certificate role's issuance record into its entries
version_added: 0.1.0
description:
  - Parses the text of the issuance record that the C(mtls.rollout.certificate) role writes on the
    controller (C(certificate_issued_file)), and that the C(mtls.rollout.revoke) playbook reads to
    revoke a host's certificates without trusting what the host reports. See C(docs/security.md).
  - The file is a mapping with one key, C(issued_certificates), a list of entries. Each entry has a
    C(serial) (as NGINX shows C($ssl_client_serial)), C(host), C(item), C(not_after) and
    C(public_key_sha256) (hex SHA-256 of the DER SubjectPublicKeyInfo), and normally C(subject),
    C(subject_alt_names), C(profile), C(ca_url) and C(issued_at).
  - An empty text (no file yet) gives an empty list. Anything else that is not such a list fails,
    naming the entry and the problem.
options:
  _input:
    description: The file's text, for example C(lookup('ansible.builtin.file', path)).
    type: str
    required: true
  source:
    description: What to call the text in error messages, normally the file's path.
    type: str
    default: issuance record
"""

EXAMPLES = r"""
---
- name: Read the issuance record
  ansible.builtin.set_fact:
    issued: "{{ lookup('ansible.builtin.file', '/srv/inventory/issued-certificates.yml')
                | mtls.rollout.issued_certificates('/srv/inventory/issued-certificates.yml') }}"

- name: Print the serials issued to web1
  ansible.builtin.debug:
    msg: "{{ issued | selectattr('host', 'equalto', 'web1') | map(attribute='serial') | list }}"
"""

RETURN = r"""
_value:
  description: The entries in file order.
  type: list
  elements: dict
"""

from typing import Any

from ansible.errors import AnsibleFilterError

from ansible_collections.mtls.rollout.plugins.plugin_utils._issued_record import (
    RecordError,
    parse,
)


def issued_certificates(text: Any, source: str = "issuance record") -> list[dict[str, Any]]:
    """The record's entries; raises :class:`AnsibleFilterError` naming the entry."""
    if text is not None and not isinstance(text, str):
        raise AnsibleFilterError(f"{source}: expected the file's text, got {type(text).__name__}")
    try:
        return parse(text, source)
    except RecordError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self) -> dict:
        return {"issued_certificates": issued_certificates}
