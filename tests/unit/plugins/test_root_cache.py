# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's cache of CA roots (plugins/plugin_utils/_root_cache.py): a root is
trusted from the cache only when it still is the pinned root, and fetched once when not."""

from __future__ import annotations

import os
import threading
import time

import pytest
from mtls_testlib import pem

from ansible_collections.mtls.rollout.plugins.module_utils import _crypto, _stepca
from ansible_collections.mtls.rollout.plugins.plugin_utils import _root_cache

URL = "https://ca.example.test:9000"


@pytest.fixture
def root(test_ca):
    return pem(test_ca.root).decode(), _crypto.certificate_fingerprint(test_ca.root)


class Fetcher:
    """Stands in for the CA's /root/<fingerprint> (the network path is tested below)."""

    def __init__(self, answer, delay=0.0):
        self.answer = answer
        self.delay = delay
        self.calls = 0

    def __call__(self, url, fingerprint, timeout, retries):
        self.calls += 1
        time.sleep(self.delay)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_a_missing_root_is_fetched_once_and_then_read_from_the_cache(tmp_path, root):
    pem_text, fingerprint = root
    fetcher = Fetcher(pem_text)
    assert _root_cache.obtain(str(tmp_path), URL, fingerprint, 5, 1, fetcher) == (pem_text, "ca")
    assert _root_cache.obtain(str(tmp_path), URL, fingerprint, 5, 1, fetcher) == (pem_text, "cache")
    assert fetcher.calls == 1
    assert (tmp_path / f"{fingerprint}.pem").read_text() == pem_text


def test_a_cached_file_that_is_not_the_pinned_root_is_not_trusted(tmp_path, root, other_ca):
    pem_text, fingerprint = root
    # Another CA's root under this fingerprint's name (a tampered or mixed-up cache).
    (tmp_path / f"{fingerprint}.pem").write_bytes(pem(other_ca.root))
    assert _root_cache.read(str(tmp_path), fingerprint) is None
    fetcher = Fetcher(pem_text)
    assert _root_cache.obtain(str(tmp_path), URL, fingerprint, 5, 1, fetcher) == (pem_text, "ca")
    assert _root_cache.read(str(tmp_path), fingerprint) == pem_text


@pytest.mark.parametrize("content", [b"", b"not a certificate", b"-----BEGIN CERTIFICATE-----\n"])
def test_a_broken_cache_file_is_ignored(tmp_path, root, content):
    _pem_text, fingerprint = root
    (tmp_path / f"{fingerprint}.pem").write_bytes(content)
    assert _root_cache.read(str(tmp_path), fingerprint) is None


def test_a_leaf_is_never_taken_for_a_root(tmp_path, test_ca):
    from cryptography.hazmat.primitives.asymmetric import ec

    leaf = test_ca.issue(ec.generate_private_key(ec.SECP256R1()).public_key())
    fingerprint = _crypto.certificate_fingerprint(leaf)
    (tmp_path / f"{fingerprint}.pem").write_bytes(pem(leaf))
    assert _root_cache.read(str(tmp_path), fingerprint) is None


def test_workers_that_miss_together_fetch_once(tmp_path, root):
    pem_text, fingerprint = root
    fetcher = Fetcher(pem_text, delay=0.3)
    results = []

    def worker():
        results.append(_root_cache.obtain(str(tmp_path), URL, fingerprint, 5, 1, fetcher))

    threads = [threading.Thread(target=worker) for _number in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert fetcher.calls == 1
    assert sorted(source for _pem, source in results) == ["ca", "cache", "cache", "cache", "cache"]


def test_a_fetch_error_says_why(tmp_path, root):
    _pem_text, fingerprint = root
    fetcher = Fetcher(
        _stepca.StepCAError("root fingerprint mismatch: ...", kind="fingerprint_mismatch")
    )
    with pytest.raises(_root_cache.RootCacheError, match="fingerprint mismatch"):
        _root_cache.obtain(str(tmp_path), URL, fingerprint, 5, 1, fetcher)
    assert not (tmp_path / f"{fingerprint}.pem").exists()


def test_without_a_writable_cache_the_root_is_still_fetched(tmp_path, root):
    pem_text, fingerprint = root
    blocked = tmp_path / "file"
    blocked.write_text("a file where the folder should be")
    fetcher = Fetcher(pem_text)
    assert _root_cache.obtain(str(blocked / "roots"), URL, fingerprint, 5, 1, fetcher) == (
        pem_text,
        "ca",
    )
    assert _root_cache.obtain(None, URL, fingerprint, 5, 1, fetcher) == (pem_text, "ca")
    assert fetcher.calls == 2


def test_the_cache_holds_only_roots_and_the_lock(tmp_path, root):
    pem_text, fingerprint = root
    _root_cache.obtain(str(tmp_path), URL, fingerprint, 5, 1, Fetcher(pem_text))
    assert sorted(os.listdir(tmp_path)) == [_root_cache.LOCK_NAME, f"{fingerprint}.pem"]


def test_transition_roots_are_normalised_without_the_pinned_root_or_repeats():
    pinned, other = "a" * 64, "b" * 64
    values = ["sha256:" + "B" * 64, pinned, ":".join(["bb"] * 32), other]
    assert _root_cache.transition_fingerprints(values, pinned) == [other]
    assert _root_cache.transition_fingerprints(None, pinned) == []
    with pytest.raises(_root_cache.RootCacheError, match="not a SHA-256 fingerprint"):
        _root_cache.transition_fingerprints(["c0ffee"], pinned)


def test_the_bundle_is_in_fingerprint_order_so_a_switch_leaves_it_alone():
    roots = {"b" * 64: "B\n", "a" * 64: "A\n"}
    assert _root_cache.bundle(roots) == "A\nB\n"
    assert _root_cache.bundle(dict(reversed(list(roots.items())))) == "A\nB\n"
