# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nginx_mtls_role_loaded: the record of what NGINX loaded, against real files."""

from __future__ import annotations

import hashlib
import json

import pytest

from ansible_collections.mtls.rollout.plugins.module_utils import _nginx_loaded as loaded
from ansible_collections.mtls.rollout.plugins.modules import nginx_mtls_role_loaded

ROOT_A = b"-----BEGIN CERTIFICATE-----\nroot A\n-----END CERTIFICATE-----\n"
ROOT_B = b"-----BEGIN CERTIFICATE-----\nroot B\n-----END CERTIFICATE-----\n"


@pytest.fixture
def host(tmp_path):
    """A configuration, a trust bundle, a default site link, and where the record goes."""
    (tmp_path / "nginx_mtls.conf").write_text("server {}\n")
    (tmp_path / "ca-bundle.pem").write_bytes(ROOT_A)
    (tmp_path / "default-available").write_text("server { listen 80; }\n")
    (tmp_path / "default").symlink_to(tmp_path / "default-available")
    return tmp_path


def args(host, *names: str) -> dict:
    names = names or ("nginx_mtls.conf", "ca-bundle.pem", "default")
    return {
        "files": [str(host / name) for name in names],
        "record": str(host / "loaded.json"),
    }


def reload(run_module, host, **extra) -> dict:
    """What the reload handler does: read the files, then write the record."""
    result = run_module(nginx_mtls_role_loaded, dict(args(host), **extra))
    (host / "loaded.json").write_text(result["record"])
    return result


def test_no_record_means_every_file_needs_a_reload(run_module, host):
    result = run_module(nginx_mtls_role_loaded, args(host))
    assert result["changed"] is False
    assert result["changed_files"] == args(host)["files"]
    assert result["reasons"] == [f"there is no record of what NGINX loaded ({host}/loaded.json)"]


def test_after_a_reload_nothing_differs(run_module, host):
    reload(run_module, host)
    result = run_module(nginx_mtls_role_loaded, args(host))
    assert result["changed_files"] == []
    assert result["reasons"] == []


def test_check_mode_reads_the_same(run_module, host):
    reload(run_module, host)
    (host / "ca-bundle.pem").write_bytes(ROOT_A + ROOT_B)
    real = run_module(nginx_mtls_role_loaded, args(host))
    check = run_module(nginx_mtls_role_loaded, args(host), check=True)
    assert check == real
    assert real["changed"] is False
    assert real["reasons"] == [f"{host}/ca-bundle.pem changed since NGINX last loaded it"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        # The certificate role's plan step during a root rotation: a second root.
        (
            lambda h: (h / "ca-bundle.pem").write_bytes(ROOT_A + ROOT_B),
            "changed since NGINX last loaded it",
        ),
        # ... and at its end, the old root gone.
        (lambda h: (h / "ca-bundle.pem").write_bytes(ROOT_B), "changed since NGINX last loaded it"),
        (lambda h: (h / "ca-bundle.pem").unlink(), "was removed since NGINX last loaded it"),
    ],
)
def test_a_changed_trust_bundle_needs_a_reload(run_module, host, change, reason):
    reload(run_module, host)
    change(host)
    result = run_module(nginx_mtls_role_loaded, args(host))
    assert result["changed_files"] == [str(host / "ca-bundle.pem")]
    assert result["reasons"] == [f"{host}/ca-bundle.pem {reason}"]


def test_the_removed_default_site_is_recorded_as_absent(run_module, host):
    (host / "default").unlink()
    first = reload(run_module, host)
    assert first["files"][str(host / "default")] is None
    assert run_module(nginx_mtls_role_loaded, args(host))["reasons"] == []
    # Put back (say, by a package upgrade) while NGINX runs without it.
    (host / "default").symlink_to(host / "default-available")
    result = run_module(nginx_mtls_role_loaded, args(host))
    assert result["reasons"] == [f"{host}/default appeared since NGINX last loaded the files"]


def test_a_removed_default_site_link_needs_a_reload(run_module, host):
    reload(run_module, host)
    (host / "default").unlink()
    result = run_module(nginx_mtls_role_loaded, args(host))
    assert result["reasons"] == [f"{host}/default was removed since NGINX last loaded it"]


def test_a_link_counts_by_what_it_points_to(run_module, host):
    reload(run_module, host)
    (host / "default-available").write_text("server { listen 8080; }\n")
    result = run_module(nginx_mtls_role_loaded, args(host))
    assert result["changed_files"] == [str(host / "default")]
    digest = hashlib.sha256(b"server { listen 8080; }\n").hexdigest()
    assert result["files"][str(host / "default")] == digest


def test_a_newly_watched_file_needs_a_reload_and_an_unwatched_one_does_not(run_module, host):
    reload(run_module, host)
    (host / "crl.pem").write_text("crl\n")
    more = run_module(
        nginx_mtls_role_loaded, args(host, "nginx_mtls.conf", "ca-bundle.pem", "default", "crl.pem")
    )
    assert more["reasons"] == [f"{host}/crl.pem is not in the record of what NGINX loaded"]
    fewer = run_module(nginx_mtls_role_loaded, args(host, "nginx_mtls.conf"))
    assert fewer["reasons"] == []


def test_several_differences_are_each_named_in_order(run_module, host):
    reload(run_module, host)
    (host / "nginx_mtls.conf").write_text("server { listen 443; }\n")
    (host / "ca-bundle.pem").write_bytes(ROOT_B)
    result = run_module(nginx_mtls_role_loaded, args(host))
    assert result["reasons"] == [
        f"{host}/nginx_mtls.conf changed since NGINX last loaded it",
        f"{host}/ca-bundle.pem changed since NGINX last loaded it",
    ]


def test_a_file_named_twice_is_recorded_once(run_module, host):
    result = run_module(nginx_mtls_role_loaded, args(host, "ca-bundle.pem", "ca-bundle.pem"))
    assert list(result["files"]) == [str(host / "ca-bundle.pem")]
    assert result["changed_files"] == [str(host / "ca-bundle.pem")]


@pytest.mark.parametrize(
    "content",
    [
        # What versions before 0.2.0 wrote (to another path; here to this one).
        "3f786850e387550fdab836ed7e6dc881de23001b\n",
        "1234\n",
        "[]",
        '{"version": 1}',
        '{"version": 2, "files": {}}',
        '{"version": 1, "files": {"/etc/x": 1}}',
        "\xff",
    ],
)
def test_a_record_in_another_format_counts_as_none(run_module, host, content):
    (host / "loaded.json").write_text(content, encoding="latin-1")
    result = run_module(nginx_mtls_role_loaded, args(host))
    assert result["changed_files"] == args(host)["files"]
    assert result["reasons"] == [
        f"the record of what NGINX loaded is not in this version's format ({host}/loaded.json)"
    ]
    # Rewritten by the next reload, after which nothing differs.
    reload(run_module, host)
    assert run_module(nginx_mtls_role_loaded, args(host))["reasons"] == []


def test_the_record_is_stable_json_with_the_digests(run_module, host):
    first = reload(run_module, host)
    second = run_module(nginx_mtls_role_loaded, args(host))
    assert first["record"] == second["record"]
    assert first["record"].endswith("}\n")
    data = json.loads(first["record"])
    assert data == {
        "version": 1,
        "files": {
            str(host / "nginx_mtls.conf"): hashlib.sha256(b"server {}\n").hexdigest(),
            str(host / "ca-bundle.pem"): hashlib.sha256(ROOT_A).hexdigest(),
            str(host / "default"): hashlib.sha256(b"server { listen 80; }\n").hexdigest(),
        },
    }


def test_a_folder_fails_naming_it(run_module, host):
    (host / "folder").mkdir()
    result = run_module(nginx_mtls_role_loaded, args(host, "folder"))
    assert result["failed"] is True
    assert result["msg"] == f"{host}/folder is a folder, not a file"


def test_an_unreadable_file_fails_naming_it(run_module, host, monkeypatch):
    # Tests may run as root, who reads any file; refuse the open instead of chmod 0.
    def refuse(path, *rest):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(loaded, "open", refuse, raising=False)
    result = run_module(nginx_mtls_role_loaded, args(host))
    assert result["failed"] is True
    assert result["msg"] == f"cannot read {host}/nginx_mtls.conf: Permission denied"


def test_a_dangling_link_is_absent(host):
    (host / "default-available").unlink()
    assert loaded.file_digest(str(host / "default")) is None


def test_compare_without_a_record_names_every_file():
    state = {"/a": "1", "/b": None}
    assert loaded.compare(state, None) == (["/a", "/b"], [])


def test_parse_record_round_trip():
    state = {"/a": "1", "/b": None}
    assert loaded.parse_record(loaded.render_record(state).encode()) == (state, None)
    assert loaded.parse_record(None) == (None, "there is no record of what NGINX loaded")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        # NGINX reads ssl_client_certificate ca-bundle.pem from its prefix (/etc/nginx).
        ("files", ["ca-bundle.pem"]),
        ("files", ["/etc/nginx/nginx_mtls.conf", "ssl/crl.pem"]),
        ("files", ["./ca-bundle.pem"]),
        ("record", "loaded.json"),
    ],
)
def test_a_relative_path_fails_naming_it(run_module, host, monkeypatch, option, value):
    # From the folder that holds the files, a relative path would read them: it must not.
    monkeypatch.chdir(host)
    result = run_module(nginx_mtls_role_loaded, dict(args(host), **{option: value}))
    relative = value[-1] if isinstance(value, list) else value
    assert result["failed"] is True
    assert result["msg"] == (
        f"{relative} is a relative path; {option} takes absolute paths only (NGINX resolves a"
        " relative path against its prefix, such as /etc/nginx, which this module does not know)"
    )
    assert "files" not in result
