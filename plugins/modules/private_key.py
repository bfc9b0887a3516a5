#!/usr/bin/python
# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: private_key
short_description: Create a private key on the host, where it stays
version_added: 0.1.0
description:
  - Creates, checks or removes a private key file on the managed host with Python
    C(cryptography). The key never leaves the host and is never returned.
  - An existing key is kept when it has the wanted type, curve or size, format and encryption.
    What happens otherwise is chosen by O(regenerate).
  - The file is written atomically. It is created with mode C(0600) and keeps C(0600) unless
    O(mode) says otherwise, whatever the umask.
  - A corrupt or unreadable key file, or a wrong passphrase, fails the task and leaves the file
    untouched, unless O(regenerate=always), or O(regenerate=on_mismatch) with
    O(replace_unreadable=true).
author:
  - mtls.rollout maintainers (!UNKNOWN)
requirements:
  - cryptography >= 3.4 on the managed host (C(python3-cryptography) on Debian 12 or Ubuntu 22.04)
extends_documentation_fragment:
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
    description: Reports what would change and writes nothing.
  diff_mode:
    support: full
    description: Shows the parsed facts of the key before and after.
    details:
      - The diff shows the key type, size, curve, format, encryption and public key fingerprint.
      - It never shows key material.
  idempotent:
    support: full
    description: Unless O(regenerate=always).
options:
  path:
    description: Path of the private key file.
    type: path
    required: true
  state:
    description: Whether the key should exist. V(absent) removes the file.
    type: str
    choices: [present, absent]
    default: present
  type:
    description: Key algorithm.
    type: str
    choices: [ec, rsa, ed25519]
    default: ec
  curve:
    description: Curve of an EC key. Ignored for other types.
    type: str
    choices: [P-256, P-384, P-521]
    default: P-256
  size:
    description: Size in bits of an RSA key. Ignored for other types.
    type: int
    choices: [2048, 3072, 4096]
    default: 2048
  passphrase:
    description:
      - Encrypts the key file (PKCS#8 with the best available encryption).
      - A plain key is re-encoded encrypted when a passphrase is set; the key itself stays.
    type: str
  format:
    description:
      - V(pkcs8) writes C(BEGIN PRIVATE KEY) (or C(BEGIN ENCRYPTED PRIVATE KEY)).
      - V(traditional) writes C(BEGIN EC PRIVATE KEY) or C(BEGIN RSA PRIVATE KEY); not for Ed25519.
      - A key stored in the other format is re-encoded; the key itself stays.
    type: str
    choices: [pkcs8, traditional]
    default: pkcs8
  regenerate:
    description:
      - V(never) keeps any readable existing key, even if it does not match (a warning says so).
      - V(fail) fails when the existing key does not match O(type), O(curve), O(size),
        O(format) or O(passphrase).
      - V(on_mismatch) makes a new key when the type, curve or size differ, and re-encodes the
        same key when only the format or passphrase differ.
      - V(always) makes a new key on every run.
    type: str
    choices: [never, fail, on_mismatch, always]
    default: on_mismatch
  replace_unreadable:
    description:
      - With O(regenerate=on_mismatch), replace a key file that cannot be read (corrupt, not a
        key, or encrypted with another passphrase) by a new key.
      - When V(false), such a file fails the task and is left byte-identical.
    type: bool
    default: false
notes:
  - The result holds only public facts. Private key material is never returned or logged.
seealso:
  - module: mtls.rollout.csr
  - module: mtls.rollout.certificate_info
"""

EXAMPLES = r"""
---
- name: Create an EC P-256 key for the web server (kept on later runs)
  mtls.rollout.private_key:
    path: /etc/ssl/mtls/web.key
    owner: root
    group: root

- name: Create an encrypted RSA 3072 key
  mtls.rollout.private_key:
    path: /etc/ssl/mtls/legacy.key
    type: rsa
    size: 3072
    passphrase: "{{ vault_key_passphrase }}"

- name: Replace a damaged key by a new one
  mtls.rollout.private_key:
    path: /etc/ssl/mtls/web.key
    replace_unreadable: true

- name: Remove a key
  mtls.rollout.private_key:
    path: /etc/ssl/mtls/old.key
    state: absent
"""

RETURN = r"""
filename:
  description: Path of the key file.
  returned: always
  type: str
  sample: /etc/ssl/mtls/web.key
type:
  description: Key algorithm of the key on disk (or that would be written in check mode).
  returned: when state is present
  type: str
  sample: ec
size:
  description: Key size in bits.
  returned: when state is present
  type: int
  sample: 256
curve:
  description: Curve of an EC key, otherwise null.
  returned: when state is present
  type: str
  sample: P-256
format:
  description: Storage format of the key.
  returned: when state is present
  type: str
  sample: pkcs8
public_key:
  description: The public key, PEM SubjectPublicKeyInfo.
  returned: when state is present, except in check mode when a new key would be made
  type: str
  sample: "-----BEGIN PUBLIC KEY-----\nMFkw...\n-----END PUBLIC KEY-----\n"
fingerprint:
  description: Hex SHA-256 of the DER SubjectPublicKeyInfo of the public key.
  returned: when state is present, except in check mode when a new key would be made
  type: str
  sample: 5b2f0c0d8a6e7c1f2d7f5e4b1c6a1b3e7d9a8c2b4e6f8a0c1d3e5f7a9b1c3d5e
changed_reason:
  description: Why the key was (or would be) written or removed; null when nothing changed.
  returned: always
  type: str
  sample: key is EC P-256, wanted EC P-384
"""


from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.mtls.rollout.plugins.module_utils import _crypto, _io

ARGUMENT_SPEC = {
    "path": {"type": "path", "required": True},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "type": {"type": "str", "choices": list(_crypto.KEY_TYPES), "default": "ec"},
    "curve": {"type": "str", "choices": list(_crypto.EC_CURVES), "default": "P-256"},
    "size": {"type": "int", "choices": list(_crypto.RSA_SIZES), "default": 2048},
    "passphrase": {"type": "str", "no_log": True},
    "format": {"type": "str", "choices": list(_crypto.KEY_FORMATS), "default": "pkcs8"},
    "regenerate": {
        "type": "str",
        "choices": list(_crypto.REGENERATE_CHOICES),
        "default": "on_mismatch",
    },
    "replace_unreadable": {"type": "bool", "default": False},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC, supports_check_mode=True, add_file_common_args=True
    )
    _crypto.require_cryptography(module)
    params = module.params
    path = params["path"]
    if params["mode"] is None:
        params["mode"] = "0600"
    try:
        if params["state"] == "absent":
            _io.exit_absent(module, path)
        spec = _crypto.KeySpec.create(params["type"], params["curve"], params["size"])
        backend = _crypto.PrivateKeyBackend(
            spec,
            fmt=params["format"],
            passphrase=params["passphrase"],
            regenerate=params["regenerate"],
            replace_unreadable=params["replace_unreadable"],
            name=path,
        )
        existing = _io.read_bytes(path)
        assessment = backend.assess(existing)
        for warning in assessment.warnings:
            module.warn(warning)
        before = {"state": "absent"}
        if assessment.current is not None:
            current = assessment.current
            before = _crypto.key_facts(current.key, current.format, current.encrypted)
        elif existing is not None:
            before = {"state": "unreadable"}

        key = assessment.current.key if assessment.current is not None else None
        if assessment.changes and not module.check_mode:
            key, content = backend.produce(assessment)
            _io.write_file(module, path, content, module.load_file_common_arguments(params))
        elif assessment.changes and assessment.action != "convert":
            key = None  # check mode: the new key is not made
        changed = assessment.changes
        reason = assessment.reason
        if existing is not None or not module.check_mode:
            file_args = module.load_file_common_arguments(params)
            if module.set_fs_attributes_if_different(file_args, False):
                changed = True
                reason = reason or "file attributes differ"
    except (_crypto.CryptoError, _io.FileIOError) as exc:
        module.fail_json(msg=to_native(exc), filename=path)

    result = {"changed": changed, "filename": path, "changed_reason": reason}
    result.update(type=spec.type, size=spec.size, curve=spec.curve, format=params["format"])
    if key is not None:
        facts = _crypto.key_facts(key)
        result.update(type=facts["type"], size=facts["size"], curve=facts["curve"])
        result.update(public_key=_crypto.public_key_pem(key), fingerprint=facts["fingerprint"])
        if assessment.changes:
            after = _crypto.key_facts(key, params["format"], bool(params["passphrase"]))
        else:
            result["format"] = assessment.current.format
            after = before
    else:
        after = {"type": spec.type, "size": spec.size, "curve": spec.curve, "fingerprint": "(new)"}
        after.update(format=params["format"], encrypted=bool(params["passphrase"]))
    result["diff"] = {"before": before, "after": after}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
