# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The token_sans filter: the SANs a step-ca signing token carries for typed SANs."""

from __future__ import annotations

DOCUMENTATION = r"""
name: token_sans
short_description: The plain SAN strings a step-ca signing token carries for typed SANs
version_added: 0.1.0
description:
  - Turns SANs written as C(DNS:), C(IP:), C(email:) or C(URI:) strings into the plain strings
    that M(mtls.rollout.step_ca_sign) puts in its one-time token, normalised the way every part
    of the collection normalises them (DNS names lower-case, IPv6 canonical).
  - The C(certificate) role uses it on the controller, so that what a token authorises comes
    from the inventory and never from what a managed host reports.
  - An empty list stays empty (M(mtls.rollout.step_ca_sign) then authorises the common name
    alone). Fails for a SAN that cannot be put in a certificate, or that step-ca would read as
    another type (C(DNS:10.0.0.5)).
options:
  _input:
    description: SANs as C(TYPE:value) strings.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
---
- name: Typed SANs as a token carries them
  ansible.builtin.assert:
    that:
      - "['DNS:Web.Example.com', 'IP:10.0.0.5'] | mtls.rollout.token_sans
         == ['web.example.com', '10.0.0.5']"
"""

RETURN = r"""
_value:
  description: Plain SAN strings, sorted and without duplicates.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.mtls.rollout.plugins.module_utils._crypto import (
    CryptoError,
    parse_sans,
    token_strings,
)


def token_sans(values: object) -> list[str]:
    """``values`` (typed SAN strings) as the plain strings of a signing token."""
    if not isinstance(values, (list, tuple)):
        raise AnsibleFilterError(f"token_sans: expected a list of SANs, got {values!r}")
    try:
        return token_strings(parse_sans(list(values)))
    except CryptoError as exc:
        raise AnsibleFilterError(f"token_sans: {exc}") from None


class FilterModule:
    def filters(self) -> dict:
        return {"token_sans": token_sans}
