#!/usr/bin/python
# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: csr
short_description: Make a certificate signing request from a key on the host
version_added: 0.1.0
description:
  - Builds a CSR with Python C(cryptography) from a private key on the managed host, and
    returns it as RV(csr) for the controller to sign. The private key never leaves the host.
  - The subject is usually just O(common_name). Subject alternative names are validated; a
    bad one fails the task with a message naming it.
  - Key usage and extended key usage follow O(profile). The key usage is C(digitalSignature),
    plus C(keyEncipherment) for RSA keys.
  - With O(path), the CSR is also written to that file, atomically. An existing CSR that
    already matches the key, subject, SANs and extensions is kept and returned as is.
author:
  - mtls.rollout maintainers (!UNKNOWN)
requirements:
  - cryptography >= 3.4 on the managed host (C(python3-cryptography) on Debian 12 or Ubuntu 22.04)
extends_documentation_fragment:
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
    description: Nothing is written; RV(csr) still holds the request that would be written.
  diff_mode:
    support: full
    description: With O(path), shows the parsed facts of the CSR file before and after.
    details:
      - The diff shows subject, SANs, profile and public key fingerprint, never PEM.
  idempotent:
    support: full
    description: A CSR file that matches is kept. Without O(path) nothing changes.
options:
  privatekey_path:
    description: Path of the private key on the host.
    type: path
    required: true
  privatekey_passphrase:
    description: Passphrase of the private key, if it is encrypted.
    type: str
  path:
    description:
      - Where to write the CSR. Optional; the CSR is returned as RV(csr) either way.
      - Without O(path) nothing is written and the task never reports a change.
    type: path
  common_name:
    description: Subject common name (CN).
    type: str
    aliases: [CN]
  organization_name:
    description: Subject organisation (O).
    type: str
    aliases: [O]
  organizational_unit_name:
    description: Subject organisational unit (OU).
    type: str
    aliases: [OU]
  country_name:
    description: Subject country (C), a two-letter code.
    type: str
    aliases: [C]
  state_or_province_name:
    description: Subject state or province (ST).
    type: str
    aliases: [ST]
  locality_name:
    description: Subject locality (L).
    type: str
    aliases: [L]
  email_address:
    description: Subject emailAddress.
    type: str
  subject_alt_names:
    description:
      - Subject alternative names as C(TYPE:value), with TYPE one of C(DNS), C(IP) (v4 or v6),
        C(email) or C(URI). Example C(DNS:web.example.com), C(IP:10.0.0.5), C(IP:2001:db8::5),
        C(email:john@example.com), C(URI:spiffe://example.com/web).
      - A wildcard is only allowed as the whole left-most DNS label, as in C(*.example.com).
      - Order and duplicates do not matter.
    type: list
    elements: str
    default: []
  profile:
    description:
      - V(server) requests C(serverAuth), V(client) C(clientAuth), V(both) both.
    type: str
    choices: [client, server, both]
    default: server
notes:
  - Without O(mode), a new CSR file gets the usual C(0666) minus umask.
seealso:
  - module: mtls.rollout.private_key
  - module: mtls.rollout.certificate_info
"""

EXAMPLES = r"""
---
- name: Make a server CSR (returned, not written)
  mtls.rollout.csr:
    privatekey_path: /etc/ssl/mtls/web.key
    common_name: web.example.com
    subject_alt_names:
      - DNS:web.example.com
      - IP:10.0.0.5
    profile: server
  register: web_csr

- name: Make a client CSR and keep a copy on the host
  mtls.rollout.csr:
    privatekey_path: /etc/ssl/mtls/john.key
    path: /etc/ssl/mtls/john.csr
    common_name: John Doe
    organization_name: Example Ltd
    subject_alt_names:
      - email:john@example.com
    profile: client
"""

RETURN = r"""
csr:
  description: The CSR in PEM form (public; sign it on the controller).
  returned: success
  type: str
  sample: "-----BEGIN CERTIFICATE REQUEST-----\nMIIBKz...\n-----END CERTIFICATE REQUEST-----\n"
filename:
  description: Path of the CSR file.
  returned: when O(path) is set
  type: str
  sample: /etc/ssl/mtls/web.csr
subject:
  description: Subject fields of the CSR.
  returned: success
  type: dict
  sample: {common_name: web.example.com}
subject_alt_names:
  description: SANs of the CSR, normalised and sorted.
  returned: success
  type: list
  elements: str
  sample: [DNS:web.example.com, IP:10.0.0.5]
extended_key_usage:
  description: Extended key usages of the CSR.
  returned: success
  type: list
  elements: str
  sample: [serverAuth]
profile:
  description: Profile of the CSR.
  returned: success
  type: str
  sample: server
public_key_fingerprint:
  description: Hex SHA-256 of the DER SubjectPublicKeyInfo of the key.
  returned: success
  type: str
  sample: 5b2f0c0d8a6e7c1f2d7f5e4b1c6a1b3e7d9a8c2b4e6f8a0c1d3e5f7a9b1c3d5e
changed_reason:
  description: Why the CSR file was (or would be) written; null when nothing changed.
  returned: always
  type: str
  sample: "SANs differ: +DNS:api.example.com"
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.mtls.rollout.plugins.module_utils import _crypto, _io

ARGUMENT_SPEC = {
    "privatekey_path": {"type": "path", "required": True},
    "privatekey_passphrase": {"type": "str", "no_log": True},
    "path": {"type": "path"},
    "subject_alt_names": {"type": "list", "elements": "str", "default": []},
    "profile": {"type": "str", "choices": list(_crypto.PROFILES), "default": "server"},
    **_crypto.subject_argument_spec(),
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC, supports_check_mode=True, add_file_common_args=True
    )
    _crypto.require_cryptography(module)
    params = module.params
    path = params["path"]
    changed, reason, before = False, None, {"state": "absent"}
    try:
        spec = _crypto.CsrSpec.create(
            {field: params[field] for field in _crypto.SUBJECT_FIELDS},
            params["subject_alt_names"],
            params["profile"],
        )
        key_path = params["privatekey_path"]
        key_data = _io.read_bytes(key_path)
        if key_data is None:
            raise _crypto.CryptoError(f"private key {key_path} does not exist")
        key = _crypto.load_private_key(key_data, params["privatekey_passphrase"], key_path).key

        csr = None
        existing = _io.read_bytes(path) if path else None
        if existing is not None:
            try:
                current = _crypto.load_csr(existing, path)
            except _crypto.CryptoError as exc:
                reason = str(exc)
            else:
                before = _crypto.csr_facts(current)
                mismatches = _crypto.csr_mismatches(current, key, spec)
                reason = "; ".join(mismatches) or None
                csr = None if mismatches else current
        elif path:
            reason = f"{path} does not exist"
        if csr is None:
            csr = _crypto.build_csr(key, spec)
            changed = bool(path)
            if path and not module.check_mode:
                pem = _crypto.csr_pem(csr).encode("ascii")
                _io.write_file(module, path, pem, _file_args(module), secret=False)
        check_attributes = existing is not None or not module.check_mode
        if (
            path
            and check_attributes
            and module.set_fs_attributes_if_different(_file_args(module), False)
        ):
            changed = True
            reason = reason or "file attributes differ"
    except (_crypto.CryptoError, _io.FileIOError) as exc:
        module.fail_json(msg=to_native(exc))

    facts = _crypto.csr_facts(csr)
    result = dict(facts, changed=changed, csr=_crypto.csr_pem(csr))
    result["changed_reason"] = reason if changed else None
    if path:
        result["filename"] = path
        result["diff"] = {"before": before, "after": facts}
    module.exit_json(**result)


def _file_args(module: AnsibleModule) -> dict:
    return module.load_file_common_arguments(module.params)


if __name__ == "__main__":
    main()
