#!/usr/bin/python
# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: certificate_install
short_description: Check issued certificates against their items, and install them with their keys
version_added: 0.2.0
description:
  - The second of the two host calls of the C(mtls.rollout.certificate) role.
  - For each item, the key the certificate will sit beside is C(<key_path>.next) when
    M(mtls.rollout.certificate_plan) staged one, else O(items[].key_path).
  - Before anything is written, the issued certificate must be exactly what the item asked for
    (defence in depth against a CA or a host asking for more) - subject the common name only;
    SANs exactly those step-ca puts in for the item's common name and SANs; the profile's
    extended key usage only; the public key of that key; a chain to the trust bundle on the
    host; valid now. Otherwise the item is refused with the reasons and none of its files change.
  - The certificate, followed by its chain, is written atomically, then the staged key is renamed
    over the working key. A crash between the two writes is healed by the next
    M(mtls.rollout.certificate_plan) call.
  - Each item is checked, written and its key renamed under the certificate lock, an C(flock) on
    the folder of its key, which the renewal timers and M(mtls.rollout.certificate_plan) take
    too (never while they wait for the CA). It waits at most 120 seconds; a lock
    still held then refuses the items of that folder. A certificate for another key than the one
    on the host now (a renewal timer rekeyed it after the plan) is refused; the next run signs
    for the current key.
  - One item's refusal does not stop the others, and does not fail the module; the refusals are
    returned in RV(failed_items) for the caller to fail the host.
author:
  - mtls.rollout maintainers (!UNKNOWN)
requirements:
  - cryptography >= 3.4 on the managed host (C(python3-cryptography) on Debian 12 or Ubuntu 22.04)
attributes:
  check_mode:
    support: full
    description: Verifies the certificates and reports what would be installed, writing nothing.
  diff_mode:
    support: none
    description: The role reports why each certificate was signed; the certificate PEM is not shown.
  idempotent:
    support: full
    description: Installing the same certificate again changes nothing.
options:
  items:
    description:
      - The items to install, with the same keys as the
        O(mtls.rollout.certificate_plan#module:items) of M(mtls.rollout.certificate_plan),
        plus O(items[].certificate).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name of the item.
        type: str
        required: true
      common_name:
        description: Subject common name the certificate must carry.
        type: str
        required: true
      subject_alt_names:
        description: The item's SANs (C(DNS:), C(IP:), C(email:), C(URI:)).
        type: list
        elements: str
        default: []
      profile:
        description: C(server) or C(client).
        type: str
        choices: [client, server]
        default: server
      key_type:
        description: Not checked here; accepted so the role can pass its items as they are.
        type: str
        choices: [ec, rsa, ed25519]
        default: ec
      key_curve:
        description: Not checked here.
        type: str
        choices: [P-256, P-384, P-521]
        default: P-256
      key_size:
        description: Not checked here.
        type: int
        choices: [2048, 3072, 4096]
        default: 2048
      key_path:
        description: Private key file; C(<key_path>.next) is used and moved here when it exists.
        type: path
        required: true
      cert_path:
        description: Certificate file to write (mode 0644).
        type: path
        required: true
      owner:
        description: Owner of the key and certificate files.
        type: str
      group:
        description: Group of the key and certificate files.
        type: str
      renew_before:
        description: Not checked here.
        type: raw
        default: "0.33"
      certificate:
        description: The issued certificate followed by its chain, in PEM.
        type: str
        required: true
  trust_bundle_path:
    description: The trust bundle on the host the certificate must chain to.
    type: path
    required: true
seealso:
  - module: mtls.rollout.certificate_plan
  - module: mtls.rollout.step_ca_sign
"""

EXAMPLES = r"""
---
- name: Install the certificate step-ca issued for the web item
  mtls.rollout.certificate_install:
    trust_bundle_path: /etc/ssl/mtls/ca-bundle.pem
    items:
      - name: web
        common_name: web.example.com
        subject_alt_names: ["DNS:web.example.com"]
        key_path: /etc/ssl/mtls/web.key
        cert_path: /etc/ssl/mtls/web.crt
        certificate: "{{ signed.results[0].fullchain }}"
  register: installed
"""

RETURN = r"""
items:
  description: One entry per item, in input order.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The item's name.
      type: str
    installed:
      description: Whether the certificate was accepted (and, outside check mode, is in place).
      type: bool
    key_replaced:
      description: Whether the staged C(.next) key was moved over the key.
      type: bool
    changed:
      description: Whether the item's files changed.
      type: bool
    msg:
      description: Why the item was refused.
      type: str
      returned: when the item was refused
changed_items:
  description: Names of the items whose files changed.
  returned: success
  type: list
  elements: str
failed_items:
  description: The refused items, each with C(name) and C(msg).
  returned: success
  type: list
  elements: dict
  sample:
    - name: web
      msg: "web: the issued certificate was refused: SANs differ from the item: -DNS:x.example"
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.mtls.rollout.plugins.module_utils import (
    _certificate_install,
    _certificate_plan,
    _crypto,
)

ARGUMENT_SPEC = {
    "items": {
        "type": "list",
        "elements": "dict",
        "required": True,
        "options": dict(
            _certificate_plan.ITEM_OPTIONS,
            certificate={"type": "str", "required": True},
        ),
    },
    "trust_bundle_path": {"type": "path", "required": True},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not _crypto.HAS_CRYPTOGRAPHY:
        module.fail_json(
            msg=missing_required_lib("cryptography (Debian/Ubuntu: python3-cryptography)"),
            missing_library="python3-cryptography",
            exception=_crypto.CRYPTOGRAPHY_IMPORT_ERROR,
        )
    try:
        result = _certificate_install.install(
            module, module.params["items"], module.params["trust_bundle_path"]
        )
    except (_certificate_plan.PlanError, _crypto.CryptoError) as exc:
        module.fail_json(msg=to_native(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
