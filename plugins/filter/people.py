# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The people filter: mtls_people as certificate items and PKCS#12 bundles."""

from __future__ import annotations

DOCUMENTATION = r"""
name: people
short_description: The people of the inventory as certificate items and PKCS#12 bundles
version_added: 0.1.0
description:
  - Validates C(mtls_people) and returns each person with the C(certificate_items) entry the
    C(certificate) role issues for them on the people host, and the PKCS#12 bundle that
    M(mtls.rollout.pkcs12) writes from it. C(site.yml), C(mtls.rollout.report) and
    C(mtls.rollout.revoke) all use it, so a person means the same files everywhere. See
    C(docs/lifecycle.md).
  - A person's certificate is a client certificate (clientAuth only) whose common name is the
    person's C(name), with the C(email) as its only SAN, an RSA 2048 key
    unless C(key_type) or C(key_size) say otherwise (every browser and key store imports RSA),
    in C(<folder>/<id>.key), C(.crt) and C(.p12).
  - C(id) defaults to the name in lower case with accents dropped and every run of other
    characters turned into one dash (C(John Doe) is C(john-doe), C(Zoë Müller) C(zoe-muller)).
  - Fails, naming the entry, for unknown keys, a missing name or email (every person needs one, it
    is the SAN, and without SANs step-ca would copy the name into a DNS name), a bad id, key type
    or key size, and for two people with the same id or the same name.
  - The result holds no passphrase (only C(has_passphrase)); tasks read it from C(mtls_people)
    by position, with C(no_log).
options:
  _input:
    description:
      - The C(mtls_people) list. Each entry takes C(name) (required, the common name),
        C(email) (required), C(id), C(passphrase) (of the bundle), C(key_type) (C(rsa), C(ec),
        C(ed25519)), C(key_size), C(duration), C(renew_before), C(owner) and C(group) (of the
        bundle), and C(bundle) (C(false) removes the bundle).
    type: list
    elements: dict
    required: true
  folder:
    description: Absolute folder of the people's keys, certificates and bundles on the people host.
    type: str
    default: /etc/ssl/mtls/people
"""

EXAMPLES = r"""
---
- name: Issue the people's certificates on the people host
  ansible.builtin.include_role:
    name: mtls.rollout.certificate
  vars:
    certificate_dir: /etc/ssl/mtls/people
    certificate_items: "{{ mtls_people | mtls.rollout.people('/etc/ssl/mtls/people')
                           | map(attribute='certificate_item') | list }}"
"""

RETURN = r"""
_value:
  description: One entry per person, in the order of the input.
  type: list
  elements: dict
  contains:
    id:
      description: The file stem.
      type: str
      sample: john-doe
    name:
      description: The common name.
      type: str
      sample: John Doe
    email:
      description: The e-mail address.
      type: str
      sample: john.doe@example.com
    certificate_item:
      description: The C(certificate_items) entry for the C(certificate) role.
      type: dict
    bundle:
      description: The bundle's C(path), C(state) (C(present) or C(absent)), C(owner) and C(group).
      type: dict
    has_passphrase:
      description: Whether the entry has a non-empty passphrase.
      type: bool
"""

from ansible_collections.mtls.rollout.plugins.plugin_utils._people import people


class FilterModule:
    def filters(self) -> dict:
        return {"people": people}
