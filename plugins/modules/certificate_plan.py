#!/usr/bin/python
# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: certificate_plan
short_description: Prepare a host's keys and trust bundle and say which certificates need signing
version_added: 0.2.0
description:
  - The first of the two host calls of the C(mtls.rollout.certificate) role; one call handles all
    certificates of a host.
  - Creates O(certificate_dir) and installs O(trust_bundle) at O(trust_bundle_path) (atomically,
    only when it differs).
  - Per item, finishes a key swap an interrupted run left half done (the installed certificate
    belongs to C(<key_path>.next), so that key is moved over O(items[].key_path)).
  - Makes a missing private key (mode 0600). A key whose type, curve or size must change is made
    beside the working key as C(<key_path>.next) and replaces it only together with its new
    certificate (M(mtls.rollout.certificate_install)). A C(.next) key that is no longer wanted is
    removed. An unreadable key fails the module; it is never replaced silently.
  - Evaluates each installed certificate (key, chain to the trust bundle, common name, SANs,
    profile, lifetime left) and returns, for each one that needs signing, the reason and a CSR made
    on the host from the key the certificate will sit beside. Private keys never leave the host.
  - Every item is checked before any file is written, so bad input changes nothing.
  - Reads and writes under the certificate lock, an C(flock) on the folder of each item's key,
    which the renewal timers and M(mtls.rollout.certificate_install) take too (never while they wait
    for the CA). It waits at most 120 seconds; a lock still held then fails the
    module with the folder and the process holding it, and nothing is changed.
  - Installs, removes or updates each item's renewal timer (O(items[].renew_timer)) and the
    renewal program, and removes the files of items with O(items[].state=absent).
author:
  - mtls.rollout maintainers (!UNKNOWN)
requirements:
  - cryptography >= 3.4 on the managed host (C(python3-cryptography) on Debian 12 or Ubuntu 22.04)
attributes:
  check_mode:
    support: full
    description: Predicts every change and writes nothing; no CSR is returned in check mode.
  diff_mode:
    support: full
    description:
      - Shows the trust bundle's subjects and, per item, the key type, the staged key and the
        certificate's facts (never PEM).
  idempotent:
    support: full
    description: A second run changes nothing unless a certificate expires in between.
options:
  items:
    description: The host's certificates.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name of the item, unique in the list.
        type: str
        required: true
      common_name:
        description: Subject common name.
        type: str
        required: true
      subject_alt_names:
        description:
          - SANs as C(DNS:), C(IP:), C(email:) or C(URI:) strings. An empty list asks for the common
            name alone, which step-ca turns into one SAN.
        type: list
        elements: str
        default: []
      profile:
        description: C(server) (serverAuth only) or C(client) (clientAuth only).
        type: str
        choices: [client, server]
        default: server
      key_type:
        description: Key algorithm.
        type: str
        choices: [ec, rsa, ed25519]
        default: ec
      key_curve:
        description: Curve of an C(ec) key.
        type: str
        choices: [P-256, P-384, P-521]
        default: P-256
      key_size:
        description: Size in bits of an C(rsa) key.
        type: int
        choices: [2048, 3072, 4096]
        default: 2048
      key_path:
        description: Private key file (mode 0600); a replacement is staged as C(<key_path>.next).
        type: path
        required: true
      cert_path:
        description: Certificate file (leaf followed by its chain, mode 0644).
        type: path
        required: true
      owner:
        description: Owner of the key and certificate files.
        type: str
      group:
        description: Group of the key and certificate files.
        type: str
      renew_before:
        description: Renewal threshold, a fraction of the lifetime (C(0.33)) or a duration (C(7d)).
        type: raw
        default: "0.33"
      state:
        description:
          - C(absent) removes the item's key, C(<key_path>.next), certificate, a CSR beside the
            certificate (same path with C(.csr)) and its renewal timer, service and settings.
        type: str
        choices: [present, absent]
        default: present
      renew_timer:
        description:
          - The renewal timer C(mtls-renew-<name>) (systemd timer and oneshot service) that
            renews the certificate between runs; see the C(mtls.rollout.certificate) role.
          - Not given, or C(enabled=false), removes an installed one.
        type: dict
        suboptions:
          enabled:
            description: Whether the item has a renewal timer.
            type: bool
            default: false
          ca_url:
            description: The CA's URL as the host reaches it (C(https://)).
            type: str
            default: ""
          reload:
            description: Commands run with C(/bin/sh -c) after a renewal, in order.
            type: list
            elements: str
            default: []
          rekey:
            description: Renew with a new key, through C(/1.0/rekey) (clientAuth certificates only).
            type: bool
            default: false
          schedule:
            description: The timer's C(OnCalendar).
            type: str
            default: hourly
          random_delay:
            description: The timer's C(RandomizedDelaySec).
            type: str
            default: 30m
  trust_bundle:
    description: The trusted root certificate(s) in PEM, as they should be installed.
    type: str
    required: true
  anchors:
    description:
      - The root certificate(s) in PEM that installed certificates must chain to; a certificate
        that does not is re-signed. Empty means O(trust_bundle).
      - During a root rotation the trust bundle holds the CA's root and the rotation's other
        root, and this only the CA's own, so that certificates issued under the old root are
        re-issued while both stay trusted.
    type: str
    default: ""
  trust_bundle_path:
    description: Where the trust bundle is installed (mode 0644).
    type: path
    required: true
  certificate_dir:
    description: Folder created with mode 0755 when missing.
    type: path
    required: true
  owner:
    description: Owner of O(certificate_dir) and the trust bundle.
    type: str
  group:
    description: Group of O(certificate_dir) and the trust bundle.
    type: str
  replace_unreadable_keys:
    description:
      - What to do with a key file that exists but holds no private key the module can load
        (damaged, truncated, not a key, or encrypted with a passphrase).
      - V(false) fails with a message naming the file and leaves every file untouched.
      - V(true) replaces it with a new key, and the item needs signing. A key file that cannot
        be read at all (permissions, I/O error) always fails.
    type: bool
    default: false
seealso:
  - module: mtls.rollout.certificate_install
  - module: mtls.rollout.step_ca_sign
"""

EXAMPLES = r"""
---
- name: Prepare keys and the trust bundle, and make the CSRs that are needed
  mtls.rollout.certificate_plan:
    certificate_dir: /etc/ssl/mtls
    trust_bundle: "{{ root.root_certificate }}"
    trust_bundle_path: /etc/ssl/mtls/ca-bundle.pem
    owner: root
    group: root
    items:
      - name: web
        common_name: web.example.com
        subject_alt_names: ["DNS:web.example.com"]
        key_path: /etc/ssl/mtls/web.key
        cert_path: /etc/ssl/mtls/web.crt
  register: plan
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
      sample: web
    changed:
      description: Whether this call changed the item's files.
      type: bool
    needs_signing:
      description: Whether the item needs a new certificate.
      type: bool
    reason:
      description: Why, in one line (C(certificate is valid) when it does not).
      type: str
      sample: "SANs differ: +DNS:new.example.com"
    reasons:
      description: The same, as a list.
      type: list
      elements: str
    key_path:
      description: The key the new certificate must match (C(<key_path>.next) when staged).
      type: str
    staged:
      description: Whether that key is the staged C(.next) key.
      type: bool
    swap_finished:
      description: Whether an interrupted key swap was finished.
      type: bool
    state:
      description: The item's C(state).
      type: str
    removed:
      description: The files removed (C(state=absent)); in check mode, the files that would be.
      type: list
      elements: str
      returned: for absent items
    renew_timer:
      description: The renewal timer after this call - C(enabled) or C(absent).
      type: str
    renew_timer_changed:
      description: Whether the timer, its service or its settings were (would be) changed.
      type: bool
    request:
      description:
        - What to sign, for M(mtls.rollout.step_ca_sign)'s O(mtls.rollout.step_ca_sign#module:csrs)
          items; C(subject_alt_names) are the item's SANs as plain values (the token authorises
          exactly these, and the common name alone when empty).
      type: dict
      returned: when the item needs signing, not in check mode
      sample:
        csr: "-----BEGIN CERTIFICATE REQUEST-----..."
        common_name: web
        subject_alt_names: [web]
needs_signing:
  description: Names of the items that need signing.
  returned: success
  type: list
  elements: str
trust_bundle_changed:
  description: Whether the trust bundle was (in check mode, would be) written or had its mode fixed.
  returned: success
  type: bool
missing_library:
  description: The Debian/Ubuntu package to install when Python C(cryptography) is missing.
  returned: failure, when cryptography cannot be imported
  type: str
  sample: python3-cryptography
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.mtls.rollout.plugins.module_utils import _certificate_plan, _crypto

ARGUMENT_SPEC = {
    "items": {
        "type": "list",
        "elements": "dict",
        "required": True,
        "options": _certificate_plan.PLAN_ITEM_OPTIONS,
    },
    "trust_bundle": {"type": "str", "required": True},
    "anchors": {"type": "str", "default": ""},
    "trust_bundle_path": {"type": "path", "required": True},
    "certificate_dir": {"type": "path", "required": True},
    "owner": {"type": "str"},
    "group": {"type": "str"},
    "replace_unreadable_keys": {"type": "bool", "default": False},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not _crypto.HAS_CRYPTOGRAPHY:
        module.fail_json(
            msg=missing_required_lib("cryptography (Debian/Ubuntu: python3-cryptography)"),
            missing_library="python3-cryptography",
            exception=_crypto.CRYPTOGRAPHY_IMPORT_ERROR,
        )
    params = module.params
    try:
        with _certificate_plan.locked(params["items"]):
            plan = _certificate_plan.make_plan(
                params["items"],
                params["certificate_dir"],
                params["trust_bundle_path"],
                params["trust_bundle"],
                owner=params["owner"],
                group=params["group"],
                anchors_pem=params["anchors"] or None,
                replace_unreadable_keys=params["replace_unreadable_keys"],
            )
            result = _certificate_plan.apply(module, plan)
    except (_certificate_plan.PlanError, _crypto.CryptoError) as exc:
        module.fail_json(msg=to_native(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
