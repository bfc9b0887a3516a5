# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The token_sans filter: typed SANs from the inventory as a signing token carries them."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.mtls.rollout.plugins.filter.token_sans import FilterModule, token_sans


@pytest.mark.parametrize(
    ("sans", "expected"),
    [
        ([], []),
        (["DNS:Web.Example.COM"], ["web.example.com"]),
        (["IP:2001:DB8:0:0::1", "DNS:web"], ["web", "2001:db8::1"]),
        (["email:John.Doe@Example.COM"], ["John.Doe@example.com"]),
        (["DNS:web", "DNS:WEB"], ["web"]),
    ],
)
def test_token_sans(sans, expected):
    assert token_sans(sans) == expected


@pytest.mark.parametrize(
    "sans",
    [
        ["DNS:10.0.0.5"],  # step-ca would issue it as an IP address
        ["IP:fe80::1%eth0"],  # a zone cannot go into a certificate
        ["bank.example.com"],  # no type
        "DNS:web",  # not a list
    ],
)
def test_token_sans_refuses(sans):
    with pytest.raises(AnsibleFilterError, match="token_sans"):
        token_sans(sans)


def test_filter_is_registered():
    assert FilterModule().filters()["token_sans"] is token_sans
