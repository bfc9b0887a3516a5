#!/usr/bin/python
# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: step_ca_sign
short_description: Sign one or many CSRs with a step-ca JWK provisioner
version_added: 0.1.0
description:
  - Signs certificate signing requests through step-ca's C(/1.0/sign) API, without the
    step CLI.
  - Decrypts the JWK provisioner's encrypted key with the provisioner password once per
    call, mints one one-time token per CSR (subject = O(common_name) or the CSR's common
    name, SANs = what O(subject_alt_names) authorises, bound to the pinned root's
    fingerprint), and sends the CSRs concurrently.
  - "Meant to run on the controller (C(delegate_to: localhost), C(run_once)), so that the
    provisioner password never reaches the hosts. Only CSRs and certificates travel."
  - Every request is checked locally first (CSR signature, times, SANs, the provisioner's
    duration limits). A CSR that asks for a name its item does not authorise is refused
    before the CA is asked, and the CA would refuse it too.
  - With O(csr), any refusal fails the task.
  - With O(csrs), each item gets its own result in RV(results), a certificate or the reason
    there is none, and a refused item does not fail the task. The task fails only for errors
    that concern the whole batch, found before anything is signed, namely invalid module
    options, an unreachable CA, a root fingerprint mismatch, an unknown provisioner or a
    wrong password.
author:
  - mtls.rollout maintainers (!UNKNOWN)
extends_documentation_fragment:
  - mtls.rollout.ca_connection
  - mtls.rollout.provisioner
attributes:
  check_mode:
    support: full
    description: Validates the CSRs and reports a change without contacting the CA.
    details:
      - In check mode the CSRs are validated and the module reports C(changed) without
        contacting the CA.
      - "With O(csrs), RV(results) holds C({ok: true}) for each item that passed the local
        checks (without certificate keys) and the error for the others."
  diff_mode:
    support: none
    description: Signing has no before and after to compare.
  idempotent:
    support: none
    description: Every run issues new certificates.
    details:
      - Every run issues new certificates. Decide whether to sign beforehand, for example
        with M(mtls.rollout.certificate_info) as the C(mtls.rollout.certificate) role does.
options:
  provisioner:
    description: Name of the JWK provisioner to sign with.
    type: str
    required: true
  csr:
    description:
      - One CSR in PEM. The result's keys describe its certificate.
      - Exactly one of O(csr) and O(csrs) is required.
    type: str
  csrs:
    description:
      - A list of CSRs to sign in one call. Each item is a PEM string, or a dictionary
        with the key C(csr) and optionally C(not_before), C(not_after), C(duration),
        C(subject_alt_names) and C(common_name), which override the module's options
        of the same name for that item.
      - An item without C(subject_alt_names) (or a plain PEM string) takes the CSR's own
        SANs, as for O(subject_alt_names).
      - The result's RV(results) list has one entry per item, in input order.
    type: list
    elements: raw
  not_before:
    description:
      - Start of validity, as an RFC 3339 time (C(2030-01-01T00:00:00Z)) or a duration
        from now (C(5m)). The CA's default is now, backdated by a minute.
    type: str
  not_after:
    description:
      - End of validity, as an RFC 3339 time or a duration counted from the start (C(24h)).
      - Must lie within the provisioner's C(minTLSCertDuration) and C(maxTLSCertDuration).
      - Without it (and without O(duration)) the provisioner's default duration applies.
    type: str
  duration:
    description: Lifetime such as C(24h) or C(720h); the same as a duration in O(not_after).
    type: str
  subject_alt_names:
    description:
      - The SANs the token authorises for O(csr), as plain strings the way step-ca reads
        them (an IP address, else a URI with a C(scheme:), else an e-mail address with an
        C(@), else a DNS name). The certificate carries exactly these, and a CSR that asks
        for any other SAN is refused.
      - They are normalised before they go into the token, as everywhere in this collection
        DNS names lower-case, IPv6 addresses in canonical form (C(2001:db8::1)), IPv4-mapped
        IPv6 addresses as IPv4, and the domain of an e-mail address lower-case. A scoped
        IPv6 address such as C(fe80::1%eth0) is refused, since a certificate cannot hold the
        zone.
      - An empty list authorises the common name alone, as step-ca puts it in the
        certificate (C(web.example.com) gives C(DNS:web.example.com), C(John Doe) gives
        C(DNS:john doe)).
      - When omitted, the token authorises the CSR's own SANs, that is whatever the
        machine that made the CSR asked for. That is only for ad hoc use with a CSR you
        trust. To sign CSRs made on managed hosts, always set it (the
        C(mtls.rollout.certificate) role does). With O(csrs), set it per item.
    type: list
    elements: str
  common_name:
    description:
      - The subject the token authorises for O(csr); the CA refuses a CSR with another
        common name. Defaults to the CSR's common name (or its first SAN).
    type: str
  workers:
    description: How many CSRs are sent to the CA at the same time (1 to 32).
    type: int
    default: 4
seealso:
  - module: mtls.rollout.step_ca_info
  - module: mtls.rollout.csr
"""

EXAMPLES = r"""
---
- name: Sign a client certificate request with the clients provisioner
  mtls.rollout.step_ca_sign:
    ca_url: https://ca.example.com:9000
    root_fingerprint: "{{ step_ca_root_fingerprint }}"
    provisioner: clients
    provisioner_password: "{{ vault_clients_provisioner_password }}"
    csr: "{{ client_csr.csr }}"
    common_name: John Doe
    subject_alt_names: [john.doe@example.com]
    duration: 24h
  delegate_to: localhost
  register: signed

- name: Say what each web server's certificate may hold (the inventory decides, not the host)
  ansible.builtin.set_fact:
    web_sign_request:
      csr: "{{ web_csr.csr }}"
      common_name: "{{ inventory_hostname }}"
      subject_alt_names: ["{{ inventory_hostname }}"]

- name: Sign the CSRs of this batch of web servers in one call
  mtls.rollout.step_ca_sign:
    ca_url: https://ca.example.com:9000
    root: files/root_ca.crt
    provisioner: servers
    provisioner_password_file: ~/.secrets/servers-provisioner
    csrs: "{{ ansible_play_batch | map('extract', hostvars, 'web_sign_request') | list }}"
    workers: 8
  delegate_to: localhost
  run_once: true
  register: batch

- name: Fail only the hosts whose CSR was refused, with the CA's reason
  ansible.builtin.fail:
    msg: "{{ batch.results[ansible_play_batch.index(inventory_hostname)].msg }}"
  when: not batch.results[ansible_play_batch.index(inventory_hostname)].ok

- name: Authorise exactly the SANs the inventory expects
  mtls.rollout.step_ca_sign:
    ca_url: https://ca.example.com:9000
    root_fingerprint: "{{ step_ca_root_fingerprint }}"
    provisioner: servers
    provisioner_password: "{{ vault_servers_provisioner_password }}"
    csrs:
      - csr: "{{ web_csr.csr }}"
        common_name: web.example.com
        subject_alt_names: [web.example.com, 192.0.2.10]
        not_after: 720h
  delegate_to: localhost
"""

RETURN = r"""
results:
  description:
    - With O(csrs), one entry per item, in the order of O(csrs).
    - "An issued certificate: C(ok: true) with the keys C(certificate), C(chain),
      C(fullchain), C(serial), C(serial_hex), C(not_before), C(not_after), C(subject) and
      C(subject_alt_names) described above (in check mode only C(ok: true))."
    - "A refused item: C(ok: false), C(msg) (the reason, with the CA's own message when the
      CA refused it) and C(error_kind) (see RV(error_kind))."
  returned: success with O(csrs)
  type: list
  elements: dict
  sample:
    - ok: true
      certificate: "-----BEGIN CERTIFICATE-----..."
      chain: "-----BEGIN CERTIFICATE-----..."
      fullchain: "-----BEGIN CERTIFICATE-----..."
      serial: "295716311217428624049553812412117335245"
      serial_hex: DE7A55F2C8E1C53C9A1A4C2E6E0A3B4D
      not_before: "2026-11-27T22:29:00Z"
      not_after: "2026-11-28T22:30:00Z"
      subject: CN=web.example.com
      subject_alt_names: [web.example.com]
    - ok: false
      msg: >-
        CSR for 'db': the CA refused the request (403): certificate request
        RSA key must be at least 2048 bits (256 bytes)
      error_kind: refused
failed_count:
  description: With O(csrs), how many items got no certificate.
  returned: success with O(csrs)
  type: int
  sample: 1
changed:
  description:
    - With O(csr), true on success. With O(csrs), true when at least one certificate was
      issued (in check mode, when at least one item passed the local checks).
  returned: always
  type: bool
certificate:
  description: The signed certificate in PEM.
  returned: success with O(csr), not in check mode
  type: str
chain:
  description: The intermediate certificate(s) in PEM, without the leaf.
  returned: success with O(csr), not in check mode
  type: str
fullchain:
  description: The leaf followed by the intermediate(s), for servers.
  returned: success with O(csr), not in check mode
  type: str
serial:
  description: Serial number in decimal, as C(/1.0/revoke) takes it.
  returned: success with O(csr), not in check mode
  type: str
  sample: "295716311217428624049553812412117335245"
serial_hex:
  description: Serial number in upper-case hex, as NGINX's C($ssl_client_serial) shows it.
  returned: success with O(csr), not in check mode
  type: str
  sample: DE7A55F2C8E1C53C9A1A4C2E6E0A3B4D
not_before:
  description: Start of validity (RFC 3339, UTC).
  returned: success with O(csr), not in check mode
  type: str
not_after:
  description: End of validity (RFC 3339, UTC).
  returned: success with O(csr), not in check mode
  type: str
  sample: "2026-11-27T22:30:00Z"
subject:
  description: The certificate's subject (RFC 4514).
  returned: success with O(csr), not in check mode
  type: str
  sample: CN=John Doe
subject_alt_names:
  description: The certificate's SANs as plain strings.
  returned: success with O(csr), not in check mode
  type: list
  elements: str
  sample: [john.doe@example.com]
provisioner:
  description: The provisioner used.
  returned: always
  type: str
root_fingerprint:
  description: SHA-256 fingerprint of the root the CA's TLS was verified against.
  returned: success, not in check mode
  type: str
error_kind:
  description:
    - On failure, the cause; one of C(unreachable), C(tls), C(fingerprint_mismatch),
      C(wrong_password), C(unknown_provisioner), C(san_not_allowed), C(duration),
      C(unauthorized), C(not_found), C(bad_request), C(refused), C(server_error),
      C(invalid). The same values appear in the failed entries of RV(results).
  returned: failure
  type: str
"""

from ansible_collections.mtls.rollout.plugins.module_utils import _stepca_modules as backend


def main() -> None:
    backend.run_module(backend.SIGN_ARGUMENT_SPEC, backend.SIGN_RULES, backend.run_sign)


if __name__ == "__main__":
    main()
