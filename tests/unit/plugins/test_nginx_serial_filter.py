# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nginx_serial filter, and the nginx_mtls role's deduplicated deny list built with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.mtls.rollout.plugins.filter.nginx_serial import (
    FilterModule,
    nginx_serial,
)

REPO = Path(__file__).resolve().parents[3]
ROLE_VARS = REPO / "roles" / "nginx_mtls" / "vars" / "main.yml"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1234, "04D2"),
        ("04D2", "04D2"),
        ("4d2", "04D2"),
        ("04:d2", "04D2"),
        ("04:D2", "04D2"),
        ("0x4D2", "04D2"),
        ("0X04d2", "04D2"),
        (" 04d2\n", "04D2"),
        ("00:04:d2", "04D2"),  # a leading zero octet is not part of the serial
        ("0x1234", "1234"),
        ("12:34", "1234"),
        (0x80, "80"),
        (1, "01"),
        ((1 << 160) - 1, "FF" * 20),
    ],
)
def test_spellings(value, expected):
    assert nginx_serial(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "de:7a:5:f2",  # a one-digit group: 0DE7A5F2 or DE7A05F2?
        "4:d2",
        "04::d2",
        "04:d2:",
        "g1",
        "",
        "0x",
        "0x04:d2",
        0,
        -5,
        "00",
        True,
        None,
        1.5,
        ["04D2"],
        1 << 160,
    ],
)
def test_refused(value):
    with pytest.raises(AnsibleFilterError, match=r"^nginx_serial: "):
        nginx_serial(value)


@pytest.mark.parametrize("value", ["1234", " 0042 ", "292915367398718432069524146224963131041"])
def test_a_string_of_digits_is_refused_as_ambiguous(value):
    # step-ca prints decimal, NGINX and serial_hex print hex that may be all digits:
    # guessing wrong would deny another certificate and let the revoked one in.
    with pytest.raises(AnsibleFilterError, match="could be decimal or hex"):
        nginx_serial(value)


def test_parsing_is_the_collections_one_parser():
    from ansible_collections.mtls.rollout.plugins.module_utils import _crypto

    for value in (1234, "04:d2", "0x4d2", "4D2"):
        assert nginx_serial(value) == _crypto.serial_hex(_crypto.parse_serial(value))


def test_registered_under_its_name():
    assert FilterModule().filters()["nginx_serial"] is nginx_serial


def test_the_roles_list_has_each_serial_once(tmp_path):
    """Two spellings of one serial give one map key (NGINX refuses a duplicate key), also
    when the serial is on the revocation list too.

    The role's own expression from vars/main.yml, evaluated by Ansible with the
    collection on its path.
    """
    serials = [1234, "04:d2", "0x4D2", "abc", 4242]
    listed = {
        "path": "/inv/revoked-certificates.yml",
        "exists": True,
        "entries": [{"serial": "04D2"}, {"serial": "BEEF"}],
    }
    extra = tmp_path / "extra.json"
    extra.write_text(
        json.dumps({"nginx_mtls_revoked_serials": serials, "nginx_mtls_revocation_list": listed})
    )
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / "build" / "collections"),
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
    }
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible"),
            "localhost",
            "--connection=local",
            "--module-name=ansible.builtin.debug",
            "--args=var=__nginx_mtls_revoked_serials",
            f"--extra-vars=@{ROLE_VARS}",
            f"--extra-vars=@{extra}",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    task = json.loads(result.stdout)["plays"][0]["tasks"][0]
    expected = ["04D2", "0ABC", "1092", "BEEF"]
    assert task["hosts"]["localhost"]["__nginx_mtls_revoked_serials"] == expected
