# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nginx_serial filter: a certificate serial as NGINX's $ssl_client_serial shows it."""

from __future__ import annotations

DOCUMENTATION = r"""
name: nginx_serial
short_description: A certificate serial in the form NGINX shows in C($ssl_client_serial)
version_added: 0.1.0
description:
  - Turns a certificate serial number into upper-case hexadecimal, without leading zeros and
    padded to an even number of digits, which is how NGINX shows C($ssl_client_serial) and how
    C(mtls.rollout.step_ca_sign) and C(mtls.rollout.step_ca_revoke) return C(serial_hex).
  - Two spellings of one serial give the same string, so a list can be deduplicated after this
    filter (the C(nginx_mtls) role does that for its revoked-serial C(map)).
  - Fails for anything that is not one unambiguous, positive serial of at most 20 octets.
  - Parsing is the collection's one serial parser (the one behind C(mtls.rollout.step_ca_revoke)'s
    O(mtls.rollout.step_ca_revoke#module:serial)), with one more refusal, see O(_input).
options:
  _input:
    description:
      - An integer is read as B(decimal), as step-ca prints serials.
      - A string is B(hexadecimal) when it has a C(0x) prefix (C(0x04D2)), is in groups of exactly
        two digits separated by colons (C(04:d2), as C(openssl x509 -text) shows it), or contains a
        letter a-f (C(04D2), as C($ssl_client_serial) and the modules' C(serial_hex) show it).
      - A string of decimal digits only is B(refused); step-ca would mean decimal, NGINX and openssl
        hex. Give such a serial as an integer, or with C(0x) or colons.
    type: raw
    required: true
"""

EXAMPLES = r"""
---
- name: The same serial in three spellings
  ansible.builtin.assert:
    that:
      - 1234 | mtls.rollout.nginx_serial == "04D2"
      - "'04:d2' | mtls.rollout.nginx_serial == '04D2'"
      - "'0x4d2' | mtls.rollout.nginx_serial == '04D2'"
"""

RETURN = r"""
_value:
  description: Upper-case hex with an even number of digits and no leading zero octet.
  type: str
"""

import re

from ansible.errors import AnsibleFilterError

from ansible_collections.mtls.rollout.plugins.module_utils._crypto import (
    CryptoError,
    parse_serial,
    serial_hex,
)

_DIGITS = re.compile(r"[0-9]+")


def nginx_serial(value: object) -> str:
    """``value`` as NGINX's ``$ssl_client_serial``; ``_crypto.parse_serial``'s forms, minus one.

    A quoted string of decimal digits is refused: ``parse_serial`` reads it as decimal
    (step-ca), but ``$ssl_client_serial`` and ``serial_hex`` print hex that can be all
    digits, and reading such a serial the wrong way would block another certificate and
    let the revoked one in.
    """
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        raise AnsibleFilterError(
            f"nginx_serial: {value!r} could be decimal or hex: give a decimal serial as an"
            " integer (unquoted), and a hex one with a 0x prefix or in two-digit groups with"
            " colons"
        )
    try:
        return serial_hex(parse_serial(value))
    except CryptoError as exc:
        raise AnsibleFilterError(f"nginx_serial: {exc}") from None


class FilterModule:
    def filters(self) -> dict:
        return {"nginx_serial": nginx_serial}
