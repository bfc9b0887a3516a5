#!/usr/bin/python
# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: certificate_report
short_description: Report a host's certificates and their expiry, and write a node_exporter textfile
version_added: 0.1.0
description:
  - Reads every certificate of the host's C(certificate_items) (as the C(certificate) role takes
    them) in one call and returns, for each, its serial, subject, C(not_after), the days left, and
    whether the C(certificate) role would re-sign it now, with the reason. This is the same rule
    as M(mtls.rollout.certificate_info) (key match, names, profile, chain to the trust bundle,
    lifetime left against C(renew_before)).
  - Optionally writes a Prometheus node_exporter textfile (O(textfile_path)) with one
    C(mtls_certificate_not_after_seconds{host=...,name=...}) series per certificate, and
    C(mtls_certificate_not_before_seconds), C(mtls_certificate_present),
    C(mtls_certificate_needs_signing), C(mtls_certificate_revoked) and C(mtls_certificate_info).
    The values are facts of the certificates, not of the run, so the file only changes when a
    certificate or its verdict does. It is written atomically through a temporary dotfile whose
    name does not end in C(.prom), so node_exporter never reads half a file.
  - The C(mtls.rollout.report) playbook runs it on every host and prints the fleet's table. See
    C(docs/lifecycle.md).
  - Only reads certificates and keys (no key material is returned; the certificates are, as
    RV(certificates[].certificate_pem)); the textfile is the one file it writes.
author:
  - mtls.rollout maintainers (!UNKNOWN)
requirements:
  - cryptography >= 3.4 on the managed host (C(python3-cryptography) on Debian 12 or Ubuntu 22.04)
attributes:
  check_mode:
    support: full
    description: Reports whether the textfile would change, and writes nothing.
  diff_mode:
    support: full
    description: Shows the textfile before and after (it holds no secret).
  idempotent:
    support: full
    description: The textfile is rewritten only when its content differs.
options:
  items:
    description:
      - The host's certificates, entries of the C(certificate) role's C(certificate_items) as
        they are.
      - The module reads C(name), C(common_name), C(subject_alt_names), C(profile) (default
        C(server)), C(renew_before), C(key_path) and C(cert_path) (default
        C(<certificate_dir>/<name>.key) and C(.crt)), and ignores the other keys.
    type: list
    elements: dict
    default: []
  certificate_dir:
    description: The C(certificate) role's C(certificate_dir), for items without explicit paths.
    type: path
    default: /etc/ssl/mtls
  renew_before:
    description:
      - The C(certificate) role's C(certificate_renew_before), for items without their own.
      - A fraction of the lifetime (V(0.33), V(33%)) or a duration (V(8h), V(7d)).
    type: raw
    default: "0.33"
  trust_bundle_path:
    description:
      - Trust bundle the certificates must chain to. Default C(<certificate_dir>/ca-bundle.pem).
      - When it is missing or unreadable the chain is not checked.
    type: path
  revoked_serials:
    description:
      - Serials on the revocation list, written as NGINX shows C($ssl_client_serial) (upper-case
        hex), for example the C(serial) of each P(mtls.rollout.revocation_list#filter) entry. A
        certificate with one of them is reported as C(revoked).
    type: list
    elements: str
    default: []
  textfile_path:
    description:
      - When set, write the metrics to this file, which must end in C(.prom) and be in the folder
        that node_exporter's textfile collector reads (C(--collector.textfile.directory); Debian's
        C(prometheus-node-exporter) reads C(/var/lib/prometheus/node-exporter)).
      - The folder must exist.
    type: path
  textfile_mode:
    description: Mode of the textfile; node_exporter's user must be able to read it.
    type: str
    default: "0644"
  host:
    description:
      - The value of the C(host) label of every series, normally C(inventory_hostname).
        Required with O(textfile_path).
    type: str
seealso:
  - module: mtls.rollout.certificate_info
"""

EXAMPLES = r"""
---
- name: Report this host's certificates and write the node_exporter textfile
  mtls.rollout.certificate_report:
    items: "{{ certificate_items }}"
    host: "{{ inventory_hostname }}"
    textfile_path: /var/lib/prometheus/node-exporter/mtls_certificates.prom
  register: report

- name: Say which certificates expire within 14 days
  ansible.builtin.debug:
    msg: "{{ item.name }}: {{ item.days_left }} days left"
  loop: >-
    {{ report.certificates | selectattr('days_left', 'defined')
       | selectattr('days_left', 'lt', 14) }}
"""

RETURN = r"""
certificates:
  description: One entry per item, in the order of O(items).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The item's name.
      type: str
      sample: web
    path:
      description: The certificate file.
      type: str
      sample: /etc/ssl/mtls/web.crt
    status:
      description:
        - C(ok), C(renew) (the role would re-sign it, see C(reason)), C(revoked), C(expired),
          C(missing), C(unreadable), or C(invalid) (the item itself is wrong).
      type: str
      sample: ok
    reason:
      description: Why it needs signing, or C(certificate is valid).
      type: str
      sample: certificate is valid
    needs_signing:
      description: Whether the C(certificate) role would re-sign it now.
      type: bool
      sample: false
    revoked:
      description: Whether its serial is in O(revoked_serials).
      type: bool
      sample: false
    serial:
      description:
        - The serial as NGINX's C($ssl_client_serial) shows it.
        - Missing when the certificate could not be read.
      type: str
      sample: 5A3F07
    subject:
      description: The subject, RFC 4514.
      type: str
      sample: CN=web
    common_name:
      description: The subject's common name (the item's, when the certificate could not be read).
      type: str
      sample: web
    certificate_pem:
      description:
        - The certificates of the file, leaf first, re-encoded as PEM (public data).
        - The C(mtls.rollout.revoke) playbook verifies it on the controller (chain to the pinned
          root, names, profile, public key) instead of trusting the other facts a host reports.
        - Missing when the certificate could not be read.
      type: str
      sample: "-----BEGIN CERTIFICATE-----..."
    not_after:
      description: End of validity, UTC, ISO 8601.
      type: str
      sample: "2026-12-31T12:00:00Z"
    not_after_timestamp:
      description: End of validity as a Unix timestamp.
      type: int
      sample: 1798718400
    days_left:
      description: Whole days until C(not_after), rounded down; negative once expired.
      type: int
      sample: 29
    remaining_seconds:
      description: Seconds until C(not_after); negative once expired.
      type: int
      sample: 2548800
textfile:
  description: What was done with O(textfile_path), with C(path) and C(changed).
  returned: when O(textfile_path) is set
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.mtls.rollout.plugins.module_utils import _certificate_report as report
from ansible_collections.mtls.rollout.plugins.module_utils import _crypto

ARGUMENT_SPEC = {
    "items": {"type": "list", "elements": "dict", "default": []},
    "certificate_dir": {"type": "path", "default": report.DEFAULT_CERTIFICATE_DIR},
    "renew_before": {"type": "raw", "default": report.DEFAULT_RENEW_BEFORE},
    "trust_bundle_path": {"type": "path"},
    "revoked_serials": {"type": "list", "elements": "str", "default": []},
    "textfile_path": {"type": "path"},
    "textfile_mode": {"type": "str", "default": "0644"},
    "host": {"type": "str"},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
        required_by={"textfile_path": "host"},
    )
    _crypto.require_cryptography(module)
    params = module.params
    result: dict = {"changed": False}
    try:
        options = report.Options.from_params(params)
        result["certificates"] = report.inspect_items(options)
        path = params["textfile_path"]
        if path:
            if not path.endswith(".prom"):
                raise report.ReportError(f"textfile_path {path} must end in .prom")
            content = report.render_textfile(params["host"], result["certificates"])
            changed, before = report.update_textfile(module, path, content, params["textfile_mode"])
            result["changed"] = changed
            result["textfile"] = {"path": path, "changed": changed}
            result["diff"] = {
                "before": before or "",
                "after": content,
                "before_header": path,
                "after_header": path,
            }
    except report.ReportError as exc:
        module.fail_json(msg=to_native(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
