#!/usr/bin/python
# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pkcs12
short_description: Bundle a key, its certificate and chain into a password-protected PKCS#12 file
version_added: 0.1.0
description:
  - Writes a PKCS#12 file (C(.p12), C(.pfx)) holding a private key, its certificate and the
    chain, protected by a passphrase, for a person to import into a browser or an operating
    system key store. See C(docs/people.md).
  - The default O(encryption=modern) encrypts the key and the certificates with AES-256-CBC,
    the key derived from the passphrase with PBKDF2-HMAC-SHA256, and protects the file with
    an HMAC-SHA256 MAC. O(encryption=legacy) is for old importers only.
  - PKCS#12 encryption uses a random salt, so the same content never gives the same bytes.
    The module decides whether the file is up to date by opening it with O(passphrase) and
    comparing the key, certificate, chain, friendly name and the encryption in use. A file
    that O(passphrase) cannot open is rewritten, and RV(changed_reason) says so.
  - The file is written atomically. It is created with mode C(0600) and keeps C(0600) unless
    O(mode) says otherwise, whatever the umask.
  - Inputs are checked before anything is written. A key that does not match the
    certificate, an unreadable input or an empty passphrase fails the task and leaves the
    bundle untouched.
author:
  - mtls.rollout maintainers (!UNKNOWN)
requirements:
  - cryptography >= 38 on the managed host for O(encryption=modern) (C(python3-cryptography)
    on Debian 12); cryptography >= 3.4 for O(encryption=legacy) (Ubuntu 22.04)
extends_documentation_fragment:
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
    description: Reports what would change and writes nothing.
    details:
      - The input files must exist in check mode too.
  diff_mode:
    support: full
    description: Shows the parsed facts of the bundle before and after.
    details:
      - The diff shows the friendly name, the key type and public key fingerprint, the
        certificate's subject, issuer, serial and expiry, the chain's subjects, and the
        encryption.
      - It never shows key material, PEM or the passphrase.
  idempotent:
    support: full
    description: Unless O(force=true).
options:
  path:
    description: Path of the PKCS#12 file.
    type: path
    required: true
  state:
    description: Whether the bundle should exist. V(absent) removes the file.
    type: str
    choices: [present, absent]
    default: present
  privatekey_path:
    description:
      - The private key (PEM or DER), for example the C(<name>.key) the certificate role
        writes. Required when O(state=present).
    type: path
  privatekey_passphrase:
    description: Passphrase of an encrypted O(privatekey_path).
    type: str
  certificate_path:
    description:
      - The certificate (PEM or DER). Required when O(state=present).
      - The first certificate is the key's certificate. Further certificates in the same file
        are the chain; the C(<name>.crt) of the certificate role holds the leaf and the
        intermediate, so it is enough alone.
    type: path
  other_certificates:
    description:
      - Files with more chain certificates (PEM bundles or one DER certificate each), added
        after those of O(certificate_path). A certificate is stored once however often it is
        given.
      - Add the root only if the person's key store should trust it. Some importers (Windows)
        then offer to install it as a trusted root.
    type: list
    elements: path
    default: []
    aliases: [ca_certificates, chain_path]
  friendly_name:
    description:
      - The name importers show for the certificate and key.
      - Defaults to the certificate's common name.
    type: str
    aliases: [name]
  passphrase:
    description:
      - The passphrase that protects the bundle. Required when O(state=present); an empty
        passphrase is refused.
      - Anyone who has the file can test guesses offline, so use a long random passphrase and
        give it to the person by another channel than the file.
      - It is used in memory only, never on a command line, and never returned.
    type: str
  encryption:
    description:
      - V(modern) is AES-256-CBC with PBKDF2-HMAC-SHA256 for key and certificates and an
        HMAC-SHA256 MAC. Firefox, Windows 10 1709 and later, Java 11.0.12 and later, and
        OpenSSL 1.1.1 and later read it. Some macOS Keychain versions refuse it.
      - V(legacy) is 3DES (pbeWithSHAAnd3-KeyTripleDES-CBC) and an HMAC-SHA1 MAC, for older
        importers only.
      - A bundle with the other encryption is rewritten.
    type: str
    choices: [modern, legacy]
    default: modern
  force:
    description: Rewrite the bundle even when it is up to date.
    type: bool
    default: false
notes:
  - The bundle content is never returned. The result holds only public facts.
  - With cryptography older than 36 on the managed host the friendly name of an existing
    bundle cannot be read, so a change of O(friendly_name) alone needs O(force=true).
seealso:
  - module: mtls.rollout.private_key
  - module: mtls.rollout.certificate_info
"""

EXAMPLES = r"""
---
- name: Give John Doe his certificate as a bundle for his browser
  mtls.rollout.pkcs12:
    path: /etc/ssl/mtls/people/john-doe.p12
    privatekey_path: /etc/ssl/mtls/john-doe.key
    certificate_path: /etc/ssl/mtls/john-doe.crt
    friendly_name: John Doe (mTLS)
    passphrase: "{{ vault_john_doe_p12_passphrase }}"
    owner: root
    group: root

- name: A bundle for an old importer that cannot read AES
  mtls.rollout.pkcs12:
    path: /etc/ssl/mtls/people/john-doe-legacy.p12
    privatekey_path: /etc/ssl/mtls/john-doe.key
    certificate_path: /etc/ssl/mtls/john-doe.crt
    other_certificates:
      - /etc/ssl/mtls/ca-bundle.pem
    encryption: legacy
    passphrase: "{{ vault_john_doe_p12_passphrase }}"

- name: Remove the bundle once it has been handed over
  mtls.rollout.pkcs12:
    path: /etc/ssl/mtls/people/john-doe.p12
    state: absent
"""

RETURN = r"""
filename:
  description: Path of the bundle.
  returned: always
  type: str
  sample: /etc/ssl/mtls/people/john-doe.p12
changed_reason:
  description: Why the bundle was (or would be) written or removed; null when nothing changed.
  returned: always
  type: str
  sample: the bundle holds another certificate (serial 5A3F07, wanted 7B2C10)
friendly_name:
  description: The friendly name in the bundle.
  returned: when state is present
  type: str
  sample: John Doe
certificate:
  description: The certificate in the bundle.
  returned: when state is present
  type: dict
  contains:
    subject_string:
      description: Subject, RFC 4514.
      type: str
      sample: CN=John Doe
    issuer_string:
      description: Issuer, RFC 4514.
      type: str
      sample: CN=Example Intermediate CA
    serial:
      description: Serial as NGINX's C($ssl_client_serial) shows it.
      type: str
      sample: 5A3F07
    not_after:
      description: End of validity, UTC.
      type: str
      sample: "2026-12-01T12:00:00Z"
    fingerprint:
      description: Hex SHA-256 of the DER certificate.
      type: str
      sample: 9c1e0b4e7d2f5a6c8b3d1e0f2a4c6e8b0d2f4a6c8e0b2d4f6a8c0e2b4d6f8a0c
chain:
  description: The chain certificates in the bundle, with the same facts as RV(certificate).
  returned: when state is present
  type: list
  elements: dict
  sample:
    - subject_string: CN=Example Intermediate CA
      issuer_string: CN=Example Root CA
      serial: "02"
      not_after: "2036-11-26T12:00:00Z"
      fingerprint: 4b8e2d0c6a1f3e5b7d9c0a2e4f6b8d0c2e4a6f8b0d2c4e6a8f0b2d4c6e8a0f2b
encryption:
  description: The protection of the bundle.
  returned: when state is present
  type: dict
  contains:
    scheme:
      description: V(modern), V(legacy), or V(other) for a foreign bundle left in place.
      type: str
      sample: modern
    key_cipher:
      description: Encryption of the private key.
      type: str
      sample: PBES2 PBKDF2-HMAC-SHA256 AES-256-CBC
    certificate_cipher:
      description: Encryption of the certificates.
      type: str
      sample: PBES2 PBKDF2-HMAC-SHA256 AES-256-CBC
    mac:
      description: The integrity check.
      type: str
      sample: HMAC-SHA256
    kdf_rounds:
      description: Key derivation rounds of the encryption.
      type: int
      sample: 100000
    mac_rounds:
      description: Key derivation rounds of the MAC; null before the bundle is written.
      type: int
      sample: 2048
key:
  description: Public facts of the key in the bundle.
  returned: when state is present
  type: dict
  sample:
    type: ec
    size: 256
    curve: P-256
    fingerprint: 5b2f0c0d8a6e7c1f2d7f5e4b1c6a1b3e7d9a8c2b4e6f8a0c1d3e5f7a9b1c3d5e
"""


from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.mtls.rollout.plugins.module_utils import _crypto, _io, _pkcs12

ARGUMENT_SPEC = {
    "path": {"type": "path", "required": True},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "privatekey_path": {"type": "path"},
    "privatekey_passphrase": {"type": "str", "no_log": True},
    "certificate_path": {"type": "path"},
    "other_certificates": {
        "type": "list",
        "elements": "path",
        "default": [],
        "aliases": ["ca_certificates", "chain_path"],
    },
    "friendly_name": {"type": "str", "aliases": ["name"]},
    "passphrase": {"type": "str", "no_log": True},
    "encryption": {"type": "str", "choices": list(_pkcs12.ENCRYPTIONS), "default": "modern"},
    "force": {"type": "bool", "default": False},
}


def _read_input(path: str, option: str) -> bytes:
    data = _io.read_bytes(path)
    if data is None:
        raise _pkcs12.Pkcs12Error(f"{option} {path} does not exist")
    return data


def _wanted(params: dict) -> tuple[_pkcs12.Bundle, list[str]]:
    """The typed request: the bundle the inputs describe."""
    others = [
        (path, _read_input(path, "other_certificates")) for path in params["other_certificates"]
    ]
    return _pkcs12.load_inputs(
        _read_input(params["privatekey_path"], "privatekey_path"),
        _read_input(params["certificate_path"], "certificate_path"),
        others,
        key_passphrase=params["privatekey_passphrase"],
        friendly_name=params["friendly_name"],
        encryption=params["encryption"],
        key_name=params["privatekey_path"],
        certificate_name=params["certificate_path"],
    )


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
        add_file_common_args=True,
        required_if=[
            ("state", "present", ("privatekey_path", "certificate_path", "passphrase")),
        ],
    )
    _crypto.require_cryptography(module)
    params = module.params
    path = params["path"]
    if params["mode"] is None:
        params["mode"] = "0600"
    try:
        if params["state"] == "absent":
            _io.exit_absent(module, path)
        wanted, warnings = _wanted(params)
        for warning in warnings:
            module.warn(warning)
        backend = _pkcs12.Pkcs12Backend(wanted, params["passphrase"], params["force"], path)
        existing = _io.read_bytes(path, _pkcs12.MAX_BUNDLE_SIZE)
        assessment = backend.assess(existing)
        changed, reason = assessment.changes, assessment.reason
        after = wanted.facts() if changed else assessment.before
        if changed and not module.check_mode:
            content = backend.produce()
            _io.write_file(module, path, content, module.load_file_common_arguments(params))
            after = wanted.facts()
            after["encryption"] = _pkcs12.detect_encryption(content).facts()
        if existing is not None or not module.check_mode:
            file_args = module.load_file_common_arguments(params)
            if module.set_fs_attributes_if_different(file_args, False):
                changed = True
                reason = reason or "file attributes differ"
    except (_pkcs12.Pkcs12Error, _io.FileIOError) as exc:
        module.fail_json(msg=to_native(exc), filename=path)

    result = {"changed": changed, "filename": path, "changed_reason": reason}
    result.update(after)
    result["diff"] = {"before": assessment.before, "after": after}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
