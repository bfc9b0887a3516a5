# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the provisioner password options of step_ca_sign and step_ca_revoke."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  provisioner_password:
    description:
      - Password that decrypts the provisioner's key. Keep it in Ansible Vault.
      - Exactly one of O(provisioner_password) and O(provisioner_password_file) is required.
    type: str
  provisioner_password_file:
    description:
      - File (on the host the module runs on) holding the provisioner password.
        Trailing white space is ignored.
    type: path
"""
