#!/usr/bin/python
# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nginx_mtls_role_loaded
short_description: Whether NGINX has loaded the files the nginx_mtls role watches
version_added: 0.2.0
description:
  - Internal to the C(mtls.rollout.nginx_mtls) role; not meant to be called on its own.
  - NGINX reads its configuration, and files the configuration names such as client trust
    bundles, only when it starts or reloads. The role's reload handler calls this module just
    before the reload and writes RV(record) to O(record) after it; every run of the role calls
    it to compare the files with that record, and reloads NGINX when RV(reasons) is not empty.
  - The record says what was on disk when a reload was sent, not that NGINX took it; a reload
    the NGINX master refuses after the signal shows only in its error log.
  - Reads only; never changes anything.
author:
  - mtls.rollout maintainers (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: Reads only, so it runs in check mode as in a real run.
  diff_mode:
    support: none
    description: Changes nothing.
  idempotent:
    support: full
    description: Reads only.
options:
  files:
    description:
      - The files NGINX reads at reload that the role watches. A file that does not exist is
        recorded as absent (for example the removed default site).
      - Absolute paths only; the module fails on a relative one, which NGINX would resolve against
        its prefix (such as C(/etc/nginx)) and this module against its working directory.
    type: list
    elements: path
    required: true
  record:
    description:
      - The record the reload handler wrote, JSON. Missing, or in another format (an older
        version of the role), it counts as a record of nothing.
      - An absolute path.
    type: path
    required: true
"""

EXAMPLES = r"""
---
- name: Compare the files NGINX reads with what it last loaded (roles/nginx_mtls/tasks/config.yml)
  mtls.rollout.nginx_mtls_role_loaded:
    files:
      - /etc/nginx/conf.d/nginx_mtls.conf
      - /etc/ssl/mtls/ca-bundle.pem
    record: /var/lib/nginx/nginx_mtls-loaded.json
  register: __nginx_mtls_loaded
"""

RETURN = r"""
files:
  description: SHA-256 (hex) of each file in O(files), by path; null for a file that does not exist.
  returned: always
  type: dict
  sample:
    /etc/ssl/mtls/ca-bundle.pem: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
record:
  description: The record of RV(files) as the reload handler writes it to O(record).
  returned: always
  type: str
changed_files:
  description:
    - The files that differ from the record; all of O(files) when there is no usable record.
  returned: always
  type: list
  elements: str
reasons:
  description:
    - Why NGINX has to reload, one line per file (or one line for a missing record); empty
      when NGINX has loaded every file as it is on disk.
  returned: always
  type: list
  elements: str
  sample: ["/etc/ssl/mtls/ca-bundle.pem changed since NGINX last loaded it"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.mtls.rollout.plugins.module_utils import _nginx_loaded

ARGUMENT_SPEC = {
    "files": {"type": "list", "elements": "path", "required": True},
    "record": {"type": "path", "required": True},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = _nginx_loaded.check(module.params["files"], module.params["record"])
    except _nginx_loaded.LoadedError as exc:
        module.fail_json(msg=to_native(exc))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
