#!/usr/bin/python
# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: step_ca_revoke
short_description: Passively revoke a certificate with a step-ca JWK provisioner
version_added: 0.1.0
description:
  - Revokes a certificate through step-ca's C(/1.0/revoke) API, without the step CLI.
  - Decrypts the JWK provisioner's encrypted key with the provisioner password, mints a
    one-time token for C(https://<ca>/1.0/revoke) with the serial as its subject, and
    asks for a passive revocation.
  - step-ca 0.19 revocation is passive only. The CA records the serial, refuses to renew
    it from then on, and publishes no CRL or OCSP answer. Services keep accepting the
    certificate until they deny its serial themselves, for example through the
    C(nginx_mtls) role's revoked-serial deny list fed with RV(serial_hex).
  - "Meant to run on the controller (C(delegate_to: localhost)), so that the provisioner
    password never reaches the hosts."
author:
  - mtls.rollout maintainers (!UNKNOWN)
extends_documentation_fragment:
  - mtls.rollout.ca_connection
  - mtls.rollout.provisioner
attributes:
  check_mode:
    support: full
    description: Validates the inputs locally and reports C(changed) without contacting the CA.
    details:
      - In check mode the serial, reason code, root and password file are checked
        locally and the CA is not contacted. step-ca 0.19 offers no read-only way to
        ask whether a serial is revoked, so check mode always reports C(changed).
  diff_mode:
    support: none
    description:
      - There is nothing to show as a diff; RV(serial_hex) and RV(reason_code) say what was
        revoked.
  idempotent:
    support: partial
    description:
      - A real run for a serial that is already revoked reports C(changed=false); check mode
        cannot tell.
    details:
      - Revoking a serial that is already revoked reports C(changed=false) and
        RV(already_revoked=true); step-ca 0.19 answers such a request with HTTP 400
        "certificate with serial number ... is already revoked", which the module
        recognises. Any other refusal fails.
      - Check mode cannot tell, see above.
options:
  provisioner:
    description:
      - Name of the JWK provisioner whose key signs the revocation token.
      - step-ca 0.19 lets any of its JWK provisioners revoke any serial, not only the
        serials that provisioner issued.
    type: str
    required: true
  serial:
    description:
      - Serial number of the certificate to revoke. Exactly one of O(serial) and
        O(certificate) is required.
      - Accepted forms, all normalised to the decimal form step-ca stores
        (RV(serial)), so each form revokes the same entry.
      - Decimal digits (as step-ca, C(step certificate inspect) and the RV(serial) of
        M(mtls.rollout.step_ca_sign) show it). A string of digits only is always read as
        decimal.
      - Hex in groups of exactly two digits joined by colons, in any case (C(5a:3f:07) as
        C(openssl x509 -text) prints it), or with a C(0x) prefix. Groups of one or three
        digits (C(de:7a:5:f2)) are refused, since a digit may be missing.
      - Plain hex containing at least one of the letters a-f, as NGINX's
        C($ssl_client_serial) shows it. Write hex made only of digits with colons or
        C(0x).
      - Quote hex with colons in YAML; unquoted, YAML 1.1 may read C(12:34:56) as a
        base-60 number.
      - step-ca 0.19 records a revocation for any serial, including one it never issued,
        so a mistyped serial succeeds and the real certificate stays valid. Prefer
        O(certificate) where the certificate is at hand.
    type: raw
  certificate:
    description:
      - The certificate to revoke in PEM; its serial number is used. When the text holds
        a chain, the first certificate counts.
    type: str
  reason:
    description: Free text stored with the revocation.
    type: str
    default: ""
  reason_code:
    description:
      - RFC 5280 reason code, as a number or its name (case-insensitive; C(_), C(-) and
        spaces are ignored).
      - 0 C(unspecified), 1 C(keyCompromise), 2 C(cACompromise), 3 C(affiliationChanged),
        4 C(superseded), 5 C(cessationOfOperation), 6 C(certificateHold),
        9 C(privilegeWithdrawn), 10 C(aACompromise).
      - 7 is unused in RFC 5280 and refused. 8 (C(removeFromCRL)) is refused because
        step-ca would record it as a revocation and cannot lift one.
      - 6 (C(certificateHold)) is permanent with step-ca 0.19; the module warns.
    type: raw
    default: 0
notes:
  - When the CA's answer to a revocation is lost and the retry meets "already revoked",
    the module reports C(changed=false) although this run revoked the serial. The serial
    is revoked either way.
seealso:
  - module: mtls.rollout.step_ca_sign
  - module: mtls.rollout.step_ca_info
"""

EXAMPLES = r"""
---
- name: Revoke a client certificate that left with a laptop
  mtls.rollout.step_ca_revoke:
    ca_url: https://ca.example.com:9000
    root_fingerprint: "{{ step_ca_root_fingerprint }}"
    provisioner: clients
    provisioner_password: "{{ vault_clients_provisioner_password }}"
    certificate: "{{ lookup('ansible.builtin.file', 'certs/john.doe.crt') }}"
    reason_code: keyCompromise
    reason: laptop stolen, ticket SEC-1234
  delegate_to: localhost
  register: revoked

- name: Revoke by the serial NGINX logged as $ssl_client_serial
  mtls.rollout.step_ca_revoke:
    ca_url: https://ca.example.com:9000
    root: files/root_ca.crt
    provisioner: clients
    provisioner_password_file: ~/.secrets/clients-provisioner
    serial: "DE7A55F2C8E1C53C9A1A4C2E6E0A3B4D"
    reason_code: 5
  delegate_to: localhost
  register: revoked

- name: Feed the nginx_mtls deny list with the revoked serial
  ansible.builtin.set_fact:
    nginx_mtls_revoked_serials: "{{ (nginx_mtls_revoked_serials | default([]))
                                    + [revoked.serial_hex] }}"
"""

RETURN = r"""
serial:
  description: The serial number in decimal, as step-ca stores it.
  returned: success
  type: str
  sample: "295716311217428624049553812412117335245"
serial_hex:
  description:
    - The serial number in upper-case hex with an even number of digits, as NGINX's
      C($ssl_client_serial) shows it; the value for the C(nginx_mtls) deny list.
  returned: success
  type: str
  sample: DE7A55F2C8E1C53C9A1A4C2E6E0A3B4D
revoked:
  description:
    - C(true) when the CA confirmed that the serial is revoked, newly or already.
    - C(false) in check mode, where the CA is not asked.
  returned: success
  type: bool
already_revoked:
  description: C(true) when the CA answered that the serial was already revoked.
  returned: success, not in check mode
  type: bool
reason_code:
  description: The RFC 5280 reason code sent, as a number.
  returned: success
  type: int
  sample: 1
reason:
  description: The reason text sent.
  returned: success
  type: str
subject:
  description: The subject (RFC 4514) of O(certificate).
  returned: success with O(certificate)
  type: str
  sample: CN=John Doe
not_after:
  description: The end of validity (RFC 3339, UTC) of O(certificate).
  returned: success with O(certificate)
  type: str
provisioner:
  description: The provisioner used.
  returned: success
  type: str
root_fingerprint:
  description: SHA-256 fingerprint of the root the CA's TLS was verified against.
  returned: success, not in check mode
  type: str
error_kind:
  description:
    - On failure, the cause; one of C(unreachable), C(tls), C(fingerprint_mismatch),
      C(wrong_password), C(unknown_provisioner), C(unauthorized), C(bad_request),
      C(refused), C(server_error), C(invalid).
  returned: failure
  type: str
"""

from ansible_collections.mtls.rollout.plugins.module_utils import _stepca_modules as backend


def main() -> None:
    backend.run_module(backend.REVOKE_ARGUMENT_SPEC, backend.REVOKE_RULES, backend.run_revoke)


if __name__ == "__main__":
    main()
