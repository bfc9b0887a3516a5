#!/usr/bin/python
# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: certificate_info
short_description: Inspect a certificate on the host and decide whether it needs signing
version_added: 0.1.0
description:
  - Reads a certificate on the managed host with Python C(cryptography) and returns its
    subject, SANs, serial, issuer, validity, remaining lifetime and extended key usage.
  - Optionally checks it against a private key (O(privatekey_path)) and a trust bundle
    (O(ca_path), with intermediates from O(chain_path)).
  - Decides RV(needs_signing) with a human-readable RV(reason). A certificate needs signing
    when it is missing or unreadable, does not match the key, does not chain to the trust
    bundle, has other SANs, subject fields or profile than wanted, is not yet valid, has expired,
    or has less lifetime left than O(renew_before).
  - This is the renewal decision of the C(mtls.rollout.certificate) role. It never changes
    anything on the host.
author:
  - mtls.rollout maintainers (!UNKNOWN)
requirements:
  - cryptography >= 3.4 on the managed host (C(python3-cryptography) on Debian 12 or Ubuntu 22.04)
attributes:
  check_mode:
    support: full
    description: The module only reads; it behaves the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
  idempotent:
    support: full
    description: It only reads.
options:
  path:
    description:
      - Path of the certificate (PEM or DER). With a PEM bundle (a full chain) the first
        certificate is inspected and the others are used as intermediates.
      - A missing file is not an error; RV(needs_signing) is then V(true).
    type: path
    required: true
  chain_path:
    description:
      - File with intermediate certificates used to build the path to O(ca_path), for example
        the full chain file.
    type: path
  ca_path:
    description:
      - Trust bundle (PEM) with the trusted root certificates. When set, a certificate that
        does not chain to one of them needs signing. The file must exist.
    type: path
    aliases: [trust_bundle_path]
  privatekey_path:
    description:
      - Private key the certificate must match. A missing key file is not an error (for
        example in check mode before the key is made); RV(needs_signing) is then V(true).
    type: path
  privatekey_passphrase:
    description: Passphrase of the private key, if it is encrypted.
    type: str
  common_name:
    description: Wanted subject common name. Not checked when omitted.
    type: str
    aliases: [CN]
  organization_name:
    description: Wanted subject organisation (O). Not checked when omitted.
    type: str
    aliases: [O]
  organizational_unit_name:
    description: Wanted subject organisational unit (OU). Not checked when omitted.
    type: str
    aliases: [OU]
  country_name:
    description: Wanted subject country (C). Not checked when omitted.
    type: str
    aliases: [C]
  state_or_province_name:
    description: Wanted subject state or province (ST). Not checked when omitted.
    type: str
    aliases: [ST]
  locality_name:
    description: Wanted subject locality (L). Not checked when omitted.
    type: str
    aliases: [L]
  email_address:
    description: Wanted subject emailAddress. Not checked when omitted.
    type: str
  subject_alt_names:
    description:
      - Wanted SANs as C(TYPE:value) (C(DNS), C(IP), C(email), C(URI)), compared as a set
        after normalisation (DNS names lower-case, IPv6 in canonical form, IPv4-mapped IPv6
        as IPv4, the domain of an e-mail address lower-case). A scoped IPv6 address such as
        C(fe80::1%eth0) is refused. Not checked when omitted.
      - An empty list means the SANs step-ca gives a certificate signed without SANs, that
        is the O(common_name) alone, typed the way step-ca types it (C(web.example.com) is
        C(DNS:web.example.com), C(10.0.0.5) is C(IP:10.0.0.5), C(John Doe) is
        C(DNS:john doe)). This is the same rule M(mtls.rollout.step_ca_sign) uses to
        authorise the names, so a certificate it issued for such an item stays valid.
    type: list
    elements: str
  profile:
    description: Wanted profile from the extended key usage. Not checked when omitted.
    type: str
    choices: [client, server, both]
  renew_before:
    description:
      - Renewal threshold. Either a fraction of the certificate's lifetime (V(0.33), or
        V(33%)) or a duration with units C(w), C(d), C(h), C(m), C(s) (V(8h), V(7d),
        V(1h30m)).
      - The certificate needs signing when less than this is left. An expired certificate
        always needs signing.
    type: raw
    default: "0.33"
seealso:
  - module: mtls.rollout.private_key
  - module: mtls.rollout.csr
"""

EXAMPLES = r"""
---
- name: Check the web server's certificate
  mtls.rollout.certificate_info:
    path: /etc/ssl/mtls/web.crt
    chain_path: /etc/ssl/mtls/web.fullchain.crt
    ca_path: /etc/ssl/mtls/ca-bundle.pem
    privatekey_path: /etc/ssl/mtls/web.key
    common_name: web.example.com
    subject_alt_names:
      - DNS:web.example.com
    profile: server
    renew_before: 8h
  register: web_cert

- name: Say why it needs signing
  ansible.builtin.debug:
    msg: "{{ web_cert.reason }}"
  when: web_cert.needs_signing
"""

RETURN = r"""
needs_signing:
  description: Whether a new certificate should be signed.
  returned: success
  type: bool
  sample: true
reason:
  description: Why it needs signing (all reasons joined by C(; )), or C(certificate is valid).
  returned: success
  type: str
  sample: "certificate expires in 3h, below the renewal threshold of 8h"
reasons:
  description: Every reason it needs signing, empty when it does not.
  returned: success
  type: list
  elements: str
  sample: ["SANs differ: +DNS:api.example.com"]
exists:
  description: Whether the certificate file exists.
  returned: success
  type: bool
  sample: true
subject:
  description: Subject fields (C(common_name), C(organization_name), ...).
  returned: when the certificate could be read
  type: dict
  sample: {common_name: web.example.com}
subject_string:
  description: Subject in RFC 4514 form.
  returned: when the certificate could be read
  type: str
  sample: CN=web.example.com
common_name:
  description: Subject common name, or null.
  returned: when the certificate could be read
  type: str
  sample: web.example.com
subject_alt_names:
  description: SANs, normalised and sorted.
  returned: when the certificate could be read
  type: list
  elements: str
  sample: [DNS:web.example.com, IP:10.0.0.5]
issuer:
  description: Issuer fields.
  returned: when the certificate could be read
  type: dict
  sample: {common_name: Example Intermediate CA}
issuer_string:
  description: Issuer in RFC 4514 form.
  returned: when the certificate could be read
  type: str
  sample: CN=Example Intermediate CA
serial:
  description:
    - Serial number as NGINX's C($ssl_client_serial) shows it, and as the C(serial_hex) of
      M(mtls.rollout.step_ca_sign) and M(mtls.rollout.step_ca_revoke) return it; upper-case
      hex without separators, zero-padded to an even number of digits (C(0ABC), not C(ABC)).
  returned: when the certificate could be read
  type: str
  sample: 5A1F03
serial_number:
  description: Serial number as an integer.
  returned: when the certificate could be read
  type: int
  sample: 5906179
not_before:
  description: Start of validity, UTC, ISO 8601.
  returned: when the certificate could be read
  type: str
  sample: "2026-11-26T22:00:00Z"
not_after:
  description: End of validity, UTC, ISO 8601.
  returned: when the certificate could be read
  type: str
  sample: "2026-11-27T22:00:00Z"
lifetime_seconds:
  description: Total lifetime in seconds.
  returned: when the certificate could be read
  type: int
  sample: 86400
remaining_seconds:
  description: Seconds until it expires (negative once expired).
  returned: when the certificate could be read
  type: int
  sample: 10800
remaining_fraction:
  description: Remaining share of the lifetime, from 0 to 1.
  returned: when the certificate could be read
  type: float
  sample: 0.125
renew_threshold_seconds:
  description: O(renew_before) in seconds for this certificate's lifetime.
  returned: when the certificate could be read
  type: int
  sample: 28512
extended_key_usage:
  description: Extended key usages by name.
  returned: when the certificate could be read
  type: list
  elements: str
  sample: [serverAuth]
profile:
  description: C(client), C(server), C(both), C(none) (no EKU) or C(other).
  returned: when the certificate could be read
  type: str
  sample: server
key_type:
  description: Type of the certificate's public key (C(ec), C(rsa), C(ed25519)).
  returned: when the certificate could be read
  type: str
  sample: ec
key_size:
  description: Size in bits of the certificate's public key.
  returned: when the certificate could be read
  type: int
  sample: 256
public_key_fingerprint:
  description: Hex SHA-256 of the certificate's DER SubjectPublicKeyInfo.
  returned: when the certificate could be read
  type: str
  sample: 5b2f0c0d8a6e7c1f2d7f5e4b1c6a1b3e7d9a8c2b4e6f8a0c1d3e5f7a9b1c3d5e
fingerprint:
  description: Hex SHA-256 of the DER certificate.
  returned: when the certificate could be read
  type: str
  sample: 9d3c7a1b5e2f4d6c8b0a9e7f5d3c1b2a4e6f8d0c2b4a6e8f0d2c4b6a8e0f2d4c
matches_key:
  description: Whether the certificate matches O(privatekey_path); null when not checked.
  returned: when the certificate could be read
  type: bool
  sample: true
chains_to_trust:
  description: Whether it chains to O(ca_path); null when not checked.
  returned: when the certificate could be read
  type: bool
  sample: true
trust_message:
  description: How it chains, or why not; null when not checked.
  returned: when the certificate could be read
  type: str
  sample: "chains to 'CN=Example Root CA'"
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.mtls.rollout.plugins.module_utils import _crypto, _io

ARGUMENT_SPEC = {
    "path": {"type": "path", "required": True},
    "chain_path": {"type": "path"},
    "ca_path": {"type": "path", "aliases": ["trust_bundle_path"]},
    "privatekey_path": {"type": "path"},
    "privatekey_passphrase": {"type": "str", "no_log": True},
    "subject_alt_names": {"type": "list", "elements": "str"},
    "profile": {"type": "str", "choices": list(_crypto.PROFILES)},
    "renew_before": {"type": "raw", "default": "0.33"},
    **_crypto.subject_argument_spec(),
}


def _read_required(path: str, what: str) -> bytes:
    data = _io.read_bytes(path)
    if data is None:
        raise _crypto.CryptoError(f"{what} {path} does not exist")
    return data


def _inspect(params: dict) -> dict:
    """The module's result (without ``changed``) for ``params``; raises on bad input."""
    desired = _crypto.Desired.create(
        subject={field: params[field] for field in _crypto.SUBJECT_FIELDS},
        subject_alt_names=params["subject_alt_names"],
        profile=params["profile"],
        renew_before=params["renew_before"],
    )
    path = params["path"]
    data = _io.read_bytes(path)
    if data is None:
        return {"exists": False, "needs_signing": True, "reason": "missing", "reasons": ["missing"]}
    try:
        cert, *bundled = _crypto.load_certificates(data, path)
    except _crypto.CryptoError as exc:
        reason = f"certificate unreadable: {exc}"
        return {"exists": True, "needs_signing": True, "reason": reason, "reasons": [reason]}

    pre_reasons = []
    key_path = params["privatekey_path"]
    if key_path:
        key_data = _io.read_bytes(key_path)
        if key_data is None:
            pre_reasons.append(f"private key {key_path} is missing")
        else:
            passphrase = params["privatekey_passphrase"]
            desired.key = _crypto.load_private_key(key_data, passphrase, key_path).key
    if params["ca_path"]:
        anchors_data = _read_required(params["ca_path"], "trust bundle")
        desired.anchors = _crypto.load_certificates(anchors_data, params["ca_path"])
    desired.intermediates = list(bundled)
    if params["chain_path"]:
        chain_data = _read_required(params["chain_path"], "chain file")
        desired.intermediates += _crypto.load_certificates(chain_data, params["chain_path"])

    verdict = _crypto.evaluate_certificate(cert, desired)
    reasons = pre_reasons + verdict.reasons
    result = dict(verdict.facts, exists=True, needs_signing=bool(reasons), reasons=reasons)
    result["reason"] = "; ".join(reasons) if reasons else verdict.reason
    return result


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    _crypto.require_cryptography(module)
    try:
        result = _inspect(module.params)
    except (_crypto.CryptoError, _io.FileIOError) as exc:
        module.fail_json(msg=to_native(exc))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
