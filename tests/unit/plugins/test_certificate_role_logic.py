# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The certificate role's controller-side logic (plugins/plugin_utils/_certificate_role.py):
item defaults, CA settings, passwords and settings keys, signing groups and their leaders,
and how outcomes get back to their hosts."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat

import pytest

from ansible_collections.mtls.rollout.plugins.plugin_utils import _certificate_role as role

FINGERPRINT = "ab" * 32
PROVISIONERS = {"client": "clients", "server": "servers"}


def _items(raw, **kwargs):
    arguments = {
        "certificate_dir": "/etc/ssl/mtls",
        "renew_before": "0.33",
        "provisioners": PROVISIONERS,
        "notify": ["nginx_mtls reload"],
    }
    arguments.update(kwargs)
    return role.fill_items(raw, **arguments)


def _ca(url="https://ca.example.test:9000"):
    return role.ca_settings(url, FINGERPRINT, {})


# ----------------------------------------------------------------------------- items


def test_items_get_the_role_defaults():
    (item,) = _items([{"name": "web", "common_name": "web.example.test"}])
    assert item == role.Item(
        name="web",
        common_name="web.example.test",
        subject_alt_names=(),
        profile="server",
        key_type="ec",
        key_curve="P-256",
        key_size=2048,
        provisioner="servers",
        duration="",
        renew_before="0.33",
        key_path="/etc/ssl/mtls/web.key",
        cert_path="/etc/ssl/mtls/web.crt",
        owner="root",
        group="root",
        notify=("nginx_mtls reload",),
    )
    assert item.module_item() == {
        "name": "web",
        "common_name": "web.example.test",
        "subject_alt_names": [],
        "profile": "server",
        "key_type": "ec",
        "key_curve": "P-256",
        "key_size": 2048,
        "key_path": "/etc/ssl/mtls/web.key",
        "cert_path": "/etc/ssl/mtls/web.crt",
        "owner": "root",
        "group": "root",
        "renew_before": "0.33",
    }


def test_absent_item_needs_only_a_name_and_keeps_timer_settings():
    (item,) = _items([{"name": "old", "state": "absent", "renew_reload": ["true"]}])
    assert (item.state, item.common_name, item.renew_reload) == ("absent", "old", ("true",))
    assert role.Item.from_dict(item.as_dict()) == item
    with pytest.raises(role.RoleError, match="state must be present or absent"):
        _items([{"name": "x", "common_name": "x", "state": "gone"}])
    with pytest.raises(role.RoleError, match="renew_timer must be true or false"):
        _items([{"name": "x", "common_name": "x", "renew_timer": "yes"}])


def test_an_item_overrides_the_defaults():
    (item,) = _items(
        [
            {
                "name": "john",
                "common_name": "John Doe",
                "profile": "client",
                "subject_alt_names": ["email:john@example.test"],
                "key_type": "rsa",
                "key_size": 3072,
                "duration": "720h",
                "renew_before": "7d",
                "cert_path": "/srv/john.pem",
                "notify": ["john reload"],
            }
        ],
        certificate_dir="/etc/ssl/mtls/",
    )
    assert item.provisioner == "clients"
    assert item.key_size == 3072
    assert item.renew_before == "7d"
    assert item.key_path == "/etc/ssl/mtls/john.key"
    assert item.cert_path == "/srv/john.pem"
    assert item.notify == ("nginx_mtls reload", "john reload")
    assert role.Item.from_dict(json.loads(json.dumps(item.as_dict()))) == item


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("web", "must be a list"),
        (["web"], "must be a dictionary"),
        ([{"name": "web", "common_name": "w", "colour": "red"}], "unknown keys: colour"),
        ([{"common_name": "w"}], "needs a unique name"),
        ([{"name": "a", "common_name": "w"}, {"name": "a", "common_name": "v"}], "used twice"),
        ([{"name": "web"}], "common_name is required"),
        (
            [{"name": "web", "common_name": "w", "profile": "both"}],
            "profile must be client or server",
        ),
        ([{"name": "web", "common_name": "w", "subject_alt_names": "DNS:w"}], "list of strings"),
        ([{"name": "web", "common_name": "w", "key_size": "big"}], "key_size"),
    ],
)
def test_bad_items_are_refused_with_the_reason(raw, message):
    with pytest.raises(role.RoleError, match=message):
        _items(raw)


def test_an_item_without_a_provisioner_is_refused():
    with pytest.raises(role.RoleError, match=r"certificate_ca_provisioners\.client"):
        _items([{"name": "x", "common_name": "x", "profile": "client"}], provisioners={})


def test_token_sans_are_as_step_ca_reads_them():
    (item,) = _items(
        [
            {
                "name": "w",
                "common_name": "w",
                "subject_alt_names": ["DNS:Web.Example.TEST", "IP:10.0.0.5"],
            }
        ]
    )
    assert item.token_sans() == ["web.example.test", "10.0.0.5"]
    (bad,) = _items([{"name": "w", "common_name": "w", "subject_alt_names": ["DNS:10.0.0.5"]}])
    with pytest.raises(role.RoleError, match=r"certificate w: SAN DNS:10\.0\.0\.5"):
        bad.token_sans()


# ----------------------------------------------------------------------------- CA settings


def test_ca_settings_from_the_role_variables_are_normalised():
    ca = role.ca_settings("https://ca.example.test:9000/", "SHA256:" + "AB:" * 31 + "AB", {})
    assert ca == role.Ca("https://ca.example.test:9000", FINGERPRINT, 10.0, 3)


def test_ca_settings_fall_back_to_module_defaults():
    defaults = {
        "ca_url": "https://other.example.test",
        "root_fingerprint": FINGERPRINT,
        "timeout": 3,
        "retries": 0,
    }
    assert role.ca_settings("", "", defaults) == role.Ca(
        "https://other.example.test", FINGERPRINT, 3.0, 0
    )
    # The role's own variables win.
    assert role.ca_settings("https://mine.example.test", "", defaults).url == (
        "https://mine.example.test"
    )


@pytest.mark.parametrize(
    ("url", "fingerprint", "message"),
    [
        ("", FINGERPRINT, "must start with https://"),
        ("http://ca.example.test", FINGERPRINT, "must start with https://"),
        ("https://ca.example.test", "", "64 hex digits"),
        ("https://ca.example.test", "abc", "64 hex digits"),
    ],
)
def test_missing_or_bad_ca_settings_are_refused(url, fingerprint, message):
    with pytest.raises(role.RoleError, match=message) as raised:
        role.ca_settings(url, fingerprint, {})
    assert "module_defaults" in str(raised.value)


# ----------------------------------------------------------------------------- passwords


URL = "https://ca.example.test:9000"


@pytest.mark.parametrize(
    ("passwords", "password", "defaults", "expected"),
    [
        (
            {f"{URL} servers": "by-url", "servers": "by-name"},
            "single",
            {"provisioner_password": "defaults"},
            ("by-url", None),
        ),
        ({"servers": "by-name"}, "single", {}, ("by-name", None)),
        ({"clients": "other"}, "single", {}, ("single", None)),
        ({}, "", {"provisioner_password": "defaults"}, ("defaults", None)),
        ({}, "", {"provisioner_password_file": "/run/pw"}, (None, "/run/pw")),
        ({}, "", {}, None),
    ],
)
def test_password_sources_in_order(passwords, password, defaults, expected):
    found = role.provisioner_password(URL, "servers", passwords, password, defaults)
    if expected is None:
        assert found is None
    else:
        assert (found.value, found.file) == expected
        assert "by-" not in repr(found) and "single" not in repr(found)


def test_passwords_must_be_a_mapping():
    with pytest.raises(role.RoleError, match="must be a mapping"):
        role.provisioner_password(URL, "servers", ["x"], "", {})


def test_settings_keys_compare_passwords_without_showing_them():
    key = b"k" * 32
    ca = _ca()
    one = role.settings_key(role.Password("x", value="s3cret-password"), 8, ca, key)
    same = role.settings_key(role.Password("y", value="s3cret-password"), 8, ca, key)
    other = role.settings_key(role.Password("x", value="another-password"), 8, ca, key)
    assert one == same != other
    assert "s3cret" not in json.dumps(one)
    # Under another run's key the same password gives another value.
    assert role.settings_key(role.Password("x", value="s3cret-password"), 8, ca, b"o" * 32) != one
    assert role.settings_key(role.Password("x", file="/run/pw"), 8, ca, key)["password"] == (
        "file /run/pw"
    )
    assert role.settings_key(None, 8, ca, key)["password"] is None


def _read_key(folder, queue):
    queue.put(role.run_key(folder))


def test_every_worker_of_a_run_gets_the_same_key(tmp_path):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [
        context.Process(target=_read_key, args=(str(tmp_path), queue)) for _number in range(6)
    ]
    for worker in workers:
        worker.start()
    keys = [queue.get(timeout=30) for _worker in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert len(set(keys)) == 1 and len(keys[0]) == 32
    assert role.run_key(str(tmp_path)) == keys[0]
    path = tmp_path / role.RUN_KEY_NAME
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == [role.RUN_KEY_NAME]


# ----------------------------------------------------------------------------- requests


def _planned(name="web", needs=True, csr="-----BEGIN CERTIFICATE REQUEST-----\nX\n", **request):
    entry = {"name": name, "needs_signing": needs}
    if csr is not None:
        entry["request"] = dict({"csr": csr}, **request)
    return entry


def test_a_request_takes_only_the_csr_from_the_host():
    items = _items(
        [
            {
                "name": "web",
                "common_name": "web.example.test",
                "subject_alt_names": ["DNS:web.example.test"],
            },
            {"name": "api", "common_name": "api.example.test", "duration": "2h"},
            {"name": "ok", "common_name": "ok.example.test"},
        ]
    )
    planned = [
        # A host that forges its result asks for more names; only its CSR is used.
        _planned("web", common_name="bank.example.test", subject_alt_names=["bank.example.test"]),
        _planned("api"),
        _planned("ok", needs=False, csr=None),
    ]
    requests = role.signing_requests(items, planned, "localhost", _ca())
    group = role.group_key("localhost", _ca(), "servers")
    assert requests == [
        {
            "name": "web",
            "group": group,
            "csr": planned[0]["request"]["csr"],
            "common_name": "web.example.test",
            "subject_alt_names": ["web.example.test"],
        },
        {
            "name": "api",
            "group": group,
            "csr": planned[1]["request"]["csr"],
            "common_name": "api.example.test",
            "subject_alt_names": [],
            "duration": "2h",
        },
    ]


@pytest.mark.parametrize(
    ("planned", "message"),
    [
        ([], "does not mention it"),
        ([_planned("web", csr=None)], "made no CSR"),
        ("not a list", "does not mention it"),
    ],
)
def test_a_plan_without_what_was_asked_is_refused(planned, message):
    items = _items([{"name": "web", "common_name": "web.example.test"}])
    with pytest.raises(role.RoleError, match=message):
        role.signing_requests(items, planned, "localhost", _ca())


# ----------------------------------------------------------------------------- groups


def _plan(run="run-1", requests=(), settings=None):
    return {"run": run, "changed": False, "requests": list(requests), "settings": settings or {}}


G1 = role.group_key("localhost", role.Ca(URL, FINGERPRINT, 10.0, 3), "servers")
G2 = role.group_key("localhost", role.Ca(URL, FINGERPRINT, 10.0, 3), "clients")
AGREED = {"password": "hmac aa", "workers": 8, "timeout": 10.0, "retries": 3}


def _request(name, group=G1):
    return {
        "name": name,
        "group": group,
        "csr": f"CSR {name}",
        "common_name": name,
        "subject_alt_names": [],
    }


def test_the_leader_is_the_first_host_of_the_batch_with_a_request_in_the_group():
    both = {G1: AGREED, G2: AGREED}
    plans = {
        "h1": {"run": "run-0", "requests": [_request("old")], "settings": both},  # earlier run
        "h2": _plan(requests=[], settings=both),
        "h3": _plan(requests=[_request("c", G2)], settings=both),
        "h4": _plan(requests=[_request("s")], settings=both),
        "h5": {"run": "run-1", "failed": True, "requests": [_request("f")], "settings": both},
    }
    looked = []

    def lookup(host):
        looked.append(host)
        return role.of_run(plans.get(host), "run-1")

    batch = ["h1", "h2", "h3", "h4", "h5", "h6"]
    assert role.leader(batch, G1, AGREED, lookup) == "h4"
    assert looked == ["h1", "h2", "h3", "h4"]  # it stops at the leader
    assert role.leader(batch, G2, AGREED, lookup) == "h3"
    assert role.leader(batch, "no such group", AGREED, lookup) is None


def test_hosts_of_a_group_with_other_settings_have_their_own_leader_and_members():
    other = dict(AGREED, password="hmac bb")
    plans = {
        "h1": _plan(requests=[_request("a")], settings={G1: AGREED}),
        "h2": _plan(requests=[_request("b")], settings={G1: other}),
        "h3": _plan(requests=[_request("c")], settings={G1: AGREED}),
        "h4": _plan(requests=[_request("d")], settings={G1: dict(AGREED, workers=4)}),
    }
    batch = ["h1", "h2", "h3", "h4"]
    assert role.leader(batch, G1, AGREED, plans.get) == "h1"
    assert role.leader(batch, G1, other, plans.get) == "h2"
    assert role.leader(batch, G1, dict(AGREED, workers=4), plans.get) == "h4"
    grouped = role.members(batch, {G1: AGREED}, plans.get)
    assert [(m.host, m.request["name"]) for m in grouped[G1]] == [("h1", "a"), ("h3", "c")]
    assert role.disagreement(G1, grouped[G1]) is None
    grouped = role.members(batch, {G1: other}, plans.get)
    assert [m.host for m in grouped[G1]] == ["h2"]


def test_members_of_a_group_come_in_batch_order_with_their_settings():
    plans = {
        "h1": _plan(requests=[_request("a"), _request("b", G2)], settings={G1: AGREED, G2: AGREED}),
        "h2": _plan(requests=[_request("c")], settings={G1: AGREED}),
    }
    grouped = role.members(["h2", "h1", "h3"], {G1: AGREED}, plans.get)
    assert [(m.host, m.request["name"]) for m in grouped[G1]] == [("h2", "c"), ("h1", "a")]
    assert role.disagreement(G1, grouped[G1]) is None


def test_hosts_that_disagree_on_the_password_are_named_and_the_password_is_not():
    """The last guard before a signature (members gives only hosts that agree)."""
    members = [
        role.Member("h1", _request("a"), AGREED),
        role.Member("h2", _request("b"), dict(AGREED, password="hmac bb")),
        role.Member("h3", _request("c"), dict(AGREED, workers=4)),
    ]
    message = role.disagreement(G1, members)
    assert message.startswith(
        "hosts h1, h2, h3 are signed together by provisioner 'servers' of"
        f" {URL} (signer localhost) but do not agree on"
    )
    assert "the provisioner password (one per set of hosts: h1, h3; h2)" in message
    assert "certificate_sign_workers (h1, h2: 8; h3: 4)" in message
    assert "hmac" not in message


def test_a_group_without_a_password_names_its_hosts():
    members = [
        role.Member("h1", _request("a"), dict(AGREED, password=None)),
        role.Member("h2", _request("b"), None),
    ]
    assert "hosts h2 gave no signing settings" in role.disagreement(G1, members)
    assert role.disagreement(G1, members[:1]).startswith("no provisioner password for")


def test_sign_arguments_carry_the_group_and_only_what_the_token_may_hold():
    plans = {"h1": _plan(requests=[dict(_request("a"), duration="2h")], settings={G1: AGREED})}
    grouped = role.members(["h1"], {G1: AGREED}, plans.get)
    arguments = role.sign_arguments(G1, grouped[G1], role.Password("p", value="secret"), AGREED)
    assert arguments == {
        "ca_url": URL,
        "root_fingerprint": FINGERPRINT,
        "provisioner": "servers",
        "provisioner_password": "secret",
        "timeout": 10.0,
        "retries": 3,
        "workers": 8,
        "csrs": [{"csr": "CSR a", "common_name": "a", "subject_alt_names": [], "duration": "2h"}],
    }
    by_file = role.sign_arguments(G1, grouped[G1], role.Password("p", file="/run/pw"), AGREED)
    assert by_file["provisioner_password_file"] == "/run/pw"
    assert "provisioner_password" not in by_file


# ----------------------------------------------------------------------------- outcomes


def _members():
    plans = {
        "h1": _plan(requests=[_request("a")], settings={G1: AGREED}),
        "h2": _plan(requests=[_request("b"), _request("c")], settings={G1: AGREED}),
    }
    return role.members(["h1", "h2"], {G1: AGREED}, plans.get)[G1]


def test_outcomes_are_per_item():
    outcomes = {}
    signed = {
        "results": [
            {
                "ok": True,
                "fullchain": "LEAF+CHAIN",
                "serial_hex": "0A",
                "not_after": "T",
                "certificate": "LEAF",
                "subject": "CN=a",
            },
            {"ok": False, "msg": "the CA refused the requested validity", "error_kind": "duration"},
            {"ok": True},  # no certificate: cannot be installed
        ]
    }
    role.distribute(outcomes, _members(), signed)
    assert outcomes == {
        "h1": {"a": {"ok": True, "fullchain": "LEAF+CHAIN", "serial_hex": "0A", "not_after": "T"}},
        "h2": {
            "b": {"ok": False, "msg": "the CA refused the requested validity"},
            "c": {"ok": False, "msg": "no certificate in step_ca_sign's answer"},
        },
    }


@pytest.mark.parametrize(
    ("signed", "message"),
    [
        ({"failed": True, "msg": "wrong provisioner password"}, "wrong provisioner password"),
        ({"failed": True}, "no answer from step_ca_sign"),
        ({"results": [{"ok": True}]}, "step_ca_sign answered for another number of requests"),
    ],
)
def test_a_failed_group_fails_each_of_its_requests(signed, message):
    outcomes = {}
    role.distribute(outcomes, _members(), signed)
    assert {(h, n, o["ok"], o["msg"]) for h, by in outcomes.items() for n, o in by.items()} == {
        ("h1", "a", False, message),
        ("h2", "b", False, message),
        ("h2", "c", False, message),
    }


def test_a_host_finds_its_outcomes_at_its_leaders():
    plan = _plan(requests=[_request("a"), _request("b", G2)])
    mine = {
        "run": "run-1",
        "leaders": {G1: "h1", G2: "h2"},
        "outcomes": {"h2": {"b": {"ok": True, "fullchain": "B"}}},
    }
    leaders = {"h1": {"run": "run-1", "outcomes": {"h2": {"a": {"ok": False, "msg": "no"}}}}}
    found = role.outcomes_for("h2", plan, mine, leaders.get)
    assert found == {"a": {"ok": False, "msg": "no"}, "b": {"ok": True, "fullchain": "B"}}
    # A leader's result of another run is not this run's answer.
    leaders["h1"]["run"] = "run-0"
    assert role.outcomes_for("h2", plan, mine, leaders.get)["a"] is None
    assert role.failures(role.outcomes_for("h2", plan, mine, {}.get), None) == [
        "a: no signing result (did the signing host fail?)"
    ]


def test_failures_say_what_each_item_lacks():
    unrecorded = {"ok": False, "unrecorded": True, "msg": "step-ca issued it (serial 0A), but"}
    lines = role.failures(
        {"a": None, "b": {"ok": False, "msg": "refused"}, "c": {"ok": True}, "d": unrecorded},
        {"failed_items": [{"name": "c", "msg": "c: the issued certificate was refused: SANs"}]},
    )
    assert lines == [
        "a: no signing result (did the signing host fail?)",
        "b: step-ca did not sign it: refused",
        "d: step-ca issued it (serial 0A), but",
        "c: the issued certificate was refused: SANs",
    ]


@pytest.mark.parametrize("value", ["", None, "  ", "/srv/inventory/issued-certificates.yml"])
def test_the_issuance_record_is_an_absolute_path_or_none(value):
    assert role.issued_file(value) == (value or "").strip()


def test_a_relative_issuance_record_is_refused():
    with pytest.raises(role.RoleError, match="certificate_issued_file must be an absolute path"):
        role.issued_file("issued-certificates.yml")


def test_topics_per_item_and_for_the_trust_bundle():
    items = _items(
        [
            {"name": "a", "common_name": "a", "notify": ["a reload"]},
            {"name": "b", "common_name": "b", "notify": ["b reload", "nginx_mtls reload"]},
        ]
    )
    assert role.topics(items, ["b"]) == ["nginx_mtls reload", "b reload"]
    assert role.topics(items, []) == []
    planned = {"trust_bundle_changed": False, "items": [{"name": "a", "swap_finished": True}]}
    assert role.plan_topics(items, ["nginx_mtls reload"], planned) == [
        "nginx_mtls reload",
        "a reload",
    ]
    planned = {"trust_bundle_changed": True, "items": [{"name": "a", "swap_finished": False}]}
    assert role.plan_topics(items, ["nginx_mtls reload"], planned) == ["nginx_mtls reload"]


def test_a_host_without_the_library_would_have_everything_checked():
    items = _items([{"name": "a", "common_name": "a"}])
    (entry,) = role.without_library(items, check_mode=True)
    assert entry["needs_signing"] is True and entry["changed"] is True
    assert entry["reason"].startswith("python3-cryptography is missing on the host")


def test_planned_items_drop_the_hosts_own_request():
    items = _items([{"name": "a", "common_name": "a"}])
    planned = [_planned("a", common_name="bank")]
    (entry,) = role.planned_items(items, planned)
    assert "request" not in entry and entry["cert_path"] == "/etc/ssl/mtls/a.crt"
    assert "request" in planned[0]  # the module's result itself is left as it was


def test_facts_that_set_the_roles_variables_are_named_and_others_are_not():
    assert role.facts_problem("h1", ["ansible_fqdn", "services", "packages"]) is None
    message = role.facts_problem("h1", ["ansible_fqdn", "certificate_signer", "certificate_items"])
    assert message.startswith(
        "The facts of h1 set certificate_items, certificate_signer: facts come from the host"
    )
