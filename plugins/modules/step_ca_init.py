#!/usr/bin/python
# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: step_ca_init
short_description: Create the PKI, provisioners and ca.json of a step-ca server
version_added: 0.1.0
description:
  - Creates, on the CA host, what C(step ca init) would, without the step CLI.
  - An EC P-256 root CA (path length 1) and intermediate CA (path length 0), their keys
    encrypted with O(password), a root-only password file for the service, and C(ca.json)
    with a badger v2 database and the given JWK provisioners.
  - Existing material is kept. The root, the intermediate and every provisioner key are only
    replaced when missing, when they do not match, or once per value of O(regenerate). A
    provisioner whose password changed gets a new key.
  - C(ca.json) is merged, not rewritten. The module owns C(root), C(crt), C(key), C(address),
    C(dnsNames), the C(type) and C(dataSource) of a badger v2 C(db), and the provisioners it is
    given, matched by name (their key, the three TLS duration claims and C(options.x509)).
    It writes C(federatedRoots), C(insecureAddress), C(logger) and C(tls) only when they are
    missing. Everything else is kept as it is, for example provisioners of other names, other
    C(authority) settings, other claims and options of its own provisioners, and a C(db) of
    another type.
  - A provisioner removed from O(provisioners) stays in C(ca.json); remove it by hand.
  - Provisioner passwords must be at least 16 characters long. step-ca serves every
    provisioner's encrypted key to anyone at C(GET /provisioners), so the password is the only
    protection of the key.
  - Provisioners with O(provisioners[].profile=client) issue clientAuth-only certificates and
    those with C(server) serverAuth-only ones, through X.509 templates.
  - Used by the C(mtls.rollout.step_ca) role.
author:
  - mtls.rollout maintainers (!UNKNOWN)
requirements:
  - cryptography >= 3.4 on the CA host
attributes:
  check_mode:
    support: full
    description: Plans every change and writes nothing.
  diff_mode:
    support: full
    description: Shows subjects, fingerprints, expiry dates, provisioner names and key ids.
    details:
      - It never shows keys.
  idempotent:
    support: full
    description: Existing keys and certificates are kept unless O(regenerate=true).
options:
  config_dir:
    description: Folder for C(certs/), C(secrets/) and C(config/ca.json).
    type: path
    required: true
  data_dir:
    description: Folder of the CA database; ca.json points at its C(db) subfolder.
    type: path
    required: true
  name:
    description: Name in the CA subjects, C(<name> Root CA) and C(<name> Intermediate CA).
    type: str
    required: true
  dns_names:
    description: Names and addresses the CA serves its TLS certificate for and accepts tokens for.
    type: list
    elements: str
    required: true
  address:
    description: Listen address of the CA, for example C(:9000).
    type: str
    default: ":9000"
  password:
    description:
      - Encrypts the root and intermediate keys; written to a root-only password file.
      - At least 8 characters.
    type: str
    required: true
  provisioners:
    description: JWK provisioners to define, in order.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Provisioner name, the issuer of its tokens.
        type: str
        required: true
      password:
        description:
          - Encrypts the provisioner key; only the encrypted key is stored.
          - At least 16 characters. Anyone who reaches the CA can download the encrypted key
            and try passwords offline.
        type: str
        required: true
      profile:
        description: C(client) for clientAuth only, C(server) for serverAuth only, C(any) for both.
        type: str
        choices: [client, server, any]
        default: any
      default_duration:
        description: Certificate lifetime when a request names none.
        type: str
        default: 24h
      min_duration:
        description: Shortest lifetime a request may ask for.
        type: str
        default: 5m
      max_duration:
        description: Longest lifetime a request may ask for.
        type: str
        default: 24h
  owner:
    description: Owner of every file written.
    type: str
    default: root
  group:
    description: Group of every file; the service's group may read ca.json and the intermediate key.
    type: str
    default: root
  regenerate:
    description:
      - Replace the root, the intermediate and the keys of the provisioners in O(provisioners),
        once per value.
      - V(false) (or an empty string) never regenerates. V(true) or any other value, for example
        a date such as V(2026-11-29), is a token. The PKI is regenerated when the token differs
        from the one recorded by the last regeneration, in C(<config_dir>/config/regenerated.json).
        A run with the same token changes nothing, so leaving the option set is harmless. To
        regenerate again, give a new token.
      - The database is kept. step-ca does not check it against the root, and it keeps the
        record of what was issued and revoked before.
      - Every certificate issued before stops being trusted once clients get the new root.
        For a change of root without downtime use O(root_rotation) instead.
    type: raw
    default: false
  rotate_intermediate:
    description:
      - Replace the intermediate CA with a new key and certificate signed by the same root,
        once per value (a token, as for O(regenerate); recorded in
        C(<config_dir>/config/intermediate-rotated.json)).
      - Certificates issued under the old intermediate stay valid, since hosts trust the root
        and every certificate file carries its own intermediate. New certificates chain to the
        new intermediate once step-ca has been restarted.
    type: raw
    default: false
  root_rotation:
    description:
      - Move the CA to a new root without downtime, in three phases, each one run.
      - V(prepare) makes a new root and an intermediate under it beside the CA's own
        (C(certs/root_ca_next.crt), C(secrets/root_ca_next_key),
        C(certs/intermediate_ca_next.crt), C(secrets/intermediate_ca_next_key)). step-ca keeps
        signing under the old root and serves the new one as a federated root, so hosts can
        trust both (RV(transition_root_fingerprints)).
      - V(switch) makes them the CA's own root and intermediate. The old root is kept as
        C(certs/root_ca_previous.crt), served as a federated root and returned in
        RV(transition_root_fingerprints), while every certificate is re-issued under the new
        root.
      - V(finish) removes the old root.
      - An empty value keeps the state found in the files, so a run between two phases changes
        nothing. Each phase is refused, with the reason, when the previous one is not done. A
        switch that a failed run left half done is finished by the next run.
    type: str
    choices: ["", prepare, switch, finish]
    default: ""
"""

EXAMPLES = r"""
---
- name: Initialise a step-ca with client and server provisioners
  mtls.rollout.step_ca_init:
    config_dir: /etc/step-ca
    data_dir: /var/lib/step-ca
    name: Example
    dns_names: [ca.example.com, localhost]
    address: ":9000"
    password: "{{ vault_step_ca_password }}"
    group: step-ca
    provisioners:
      - name: clients
        password: "{{ vault_clients_password }}"
        profile: client
        max_duration: 8760h
      - name: servers
        password: "{{ vault_servers_password }}"
        profile: server
  no_log: true
"""

RETURN = r"""
root_certificate:
  description: The root CA certificate (PEM).
  returned: success
  type: str
root_fingerprint:
  description: Hex SHA-256 fingerprint of the root certificate, for pinning.
  returned: success
  type: str
provisioners:
  description: Name and key id of each provisioner.
  returned: success
  type: list
  elements: dict
  sample: [{"name": "clients", "kid": "Rz4e..."}]
root_rotation:
  description: The state of a root rotation after this run, V(none), V(prepared) or V(switched).
  returned: success
  type: str
transition_root_fingerprints:
  description:
    - Fingerprints of the roots to trust beside RV(root_fingerprint) during a root rotation
      (the new root once prepared, the old one once switched); empty otherwise.
  returned: success
  type: list
  elements: str
restart_marker:
  description:
    - Path of the file written before any change, which says that step-ca must be restarted
      to use the files. The caller removes it once step-ca has restarted; the
      C(mtls.rollout.step_ca) role does, and restarts step-ca on any run that finds it.
  returned: success
  type: str
intermediate_fingerprint:
  description: Hex SHA-256 fingerprint of the intermediate CA certificate step-ca signs with.
  returned: success
  type: str
regenerated:
  description: Whether this run regenerated (or, in check mode, would regenerate) the PKI.
  returned: success
  type: bool
changed_reasons:
  description: Why each change was made; empty when nothing changed.
  returned: success
  type: list
  elements: str
  sample: ["root CA missing: created", "provisioner clients: new key"]
"""

import os
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.mtls.rollout.plugins.module_utils import _io

try:
    from ansible_collections.mtls.rollout.plugins.module_utils import _stepca_init
except ImportError:  # cryptography is missing on the CA host
    _stepca_init = None
    IMPORT_ERROR = traceback.format_exc()

PROVISIONER_SPEC = {
    "name": {"type": "str", "required": True},
    "password": {"type": "str", "required": True, "no_log": True},
    "profile": {"type": "str", "choices": ["client", "server", "any"], "default": "any"},
    "default_duration": {"type": "str", "default": "24h"},
    "min_duration": {"type": "str", "default": "5m"},
    "max_duration": {"type": "str", "default": "24h"},
}

ARGUMENT_SPEC = {
    "config_dir": {"type": "path", "required": True},
    "data_dir": {"type": "path", "required": True},
    "name": {"type": "str", "required": True},
    "dns_names": {"type": "list", "elements": "str", "required": True},
    "address": {"type": "str", "default": ":9000"},
    "password": {"type": "str", "required": True, "no_log": True},
    "provisioners": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": PROVISIONER_SPEC,
    },
    "owner": {"type": "str", "default": "root"},
    "group": {"type": "str", "default": "root"},
    "regenerate": {"type": "raw", "default": False},
    "rotate_intermediate": {"type": "raw", "default": False},
    "root_rotation": {
        "type": "str",
        "choices": ["", "prepare", "switch", "finish"],
        "default": "",
    },
}


def _file_args(layout, params) -> dict:
    """Final mode, owner and group of each folder and file step_ca_init manages, by path.

    Only the service's group may read ca.json and the intermediate key; the rest is root's.
    """
    return {
        path: {
            "mode": mode,
            "owner": params["owner"],
            "group": params["group"] if service_readable else "root",
        }
        for path, mode, service_readable in layout.folders() + layout.managed_files()
    }


def _set_attributes(module, file_args: dict, changed: bool) -> bool:
    for path, args in file_args.items():
        if os.path.exists(path):
            attrs = module.load_file_common_arguments(args, path=path)
            changed = module.set_fs_attributes_if_different(attrs, changed)
    return changed


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if _stepca_init is None:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=IMPORT_ERROR)
    params = module.params
    try:
        plan = _stepca_init.plan(params)
    except _stepca_init.StepCAInitError as exc:
        module.fail_json(msg=str(exc))

    layout = _stepca_init.Layout(params["config_dir"], params["data_dir"])
    changed = bool(plan.writes or plan.removes)
    if not module.check_mode:
        file_args = _file_args(layout, params)
        try:
            for folder, _mode, _readable in layout.folders():
                os.makedirs(folder, mode=0o700, exist_ok=True)
            if plan.writes or plan.removes:
                # First: step-ca must be restarted for any of what follows, also when this
                # run dies before its handler runs (the role restarts while it exists).
                _io.write_file(module, layout.restart_marker, b"", file_args[layout.restart_marker])
            for change in plan.writes:
                # A 0600 temporary file renamed into place, then the final attributes.
                _io.write_file(module, change.path, change.content, file_args[change.path])
            for path in plan.removes:
                _io.remove_file(path)
        except OSError as exc:
            module.fail_json(msg=f"cannot create {exc.filename}: {exc.strerror}")
        except _io.FileIOError as exc:
            module.fail_json(msg=str(exc))
        changed = _set_attributes(module, file_args, changed)

    transition = plan.transition_roots
    if module.check_mode and any(c.path == layout.next_root_cert for c in plan.writes):
        # A root only planned in check mode: step-ca cannot serve it to the hosts.
        transition = []
    module.exit_json(
        changed=changed,
        root_certificate=plan.root_pem,
        root_fingerprint=plan.root_fingerprint,
        provisioners=plan.provisioners,
        regenerated=plan.regenerated,
        root_rotation=plan.root_rotation,
        transition_root_fingerprints=transition,
        intermediate_fingerprint=plan.intermediate_fingerprint,
        restart_marker=layout.restart_marker,
        changed_reasons=plan.reasons,
        diff={"before": plan.before, "after": plan.after},
    )


if __name__ == "__main__":
    main()
