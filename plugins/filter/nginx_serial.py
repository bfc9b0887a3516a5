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
options:
  _input:
    description:
      - An integer is read as B(decimal), as step-ca prints serials.
      - A string is read as B(hexadecimal), any case, optionally with a C(0x) prefix, either plain
        (C(04D2), as C($ssl_client_serial) and C(openssl x509 -serial) show it) or in groups of
        exactly two digits separated by colons (C(04:d2), as C(openssl x509 -text) shows it).
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

from ansible_collections.mtls.rollout.plugins.module_utils._stepca import serial_hex

_HEX = re.compile(r"[0-9A-Fa-f]+")
_PAIR = re.compile(r"[0-9A-Fa-f]{2}")
_MAX = 1 << (20 * 8)  # RFC 5280: at most 20 octets


def nginx_serial(value: object) -> str:
    """``value`` (decimal int, or hex string) as NGINX's ``$ssl_client_serial``."""
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if text[:2] in ("0x", "0X"):
            text = text[2:]
        groups = text.split(":")
        if len(groups) > 1 and all(_PAIR.fullmatch(group) for group in groups):
            text = "".join(groups)
        if _HEX.fullmatch(text):
            number = int(text, 16)
    if number is None or not 0 < number < _MAX:
        raise AnsibleFilterError(
            f"nginx_serial: {value!r} is not a certificate serial: give a positive decimal integer,"
            " or a hex string (plain, 0x-prefixed, or two-digit groups separated by colons)"
            " of at most 20 octets"
        )
    return serial_hex(number)


class FilterModule:
    def filters(self) -> dict:
        return {"nginx_serial": nginx_serial}
