"""step_ca installed from a checksummed release archive, and refused on a mismatch."""

from __future__ import annotations


def test_binary_from_the_package_runs(container):
    ca = container("install-ca")
    assert ca.file("/usr/local/bin/step-ca").mode == 0o755
    assert ca.check_output("/usr/local/bin/step-ca version").startswith("Smallstep CA/0.19.0")


def test_ca_from_the_package_is_healthy(container):
    ca = container("install-ca")
    health = ca.check_output(
        "curl --silent --show-error --cacert /etc/step-ca/certs/root_ca.crt "
        "https://localhost:9000/health"
    )
    assert health.strip() == '{"status":"ok"}'


def test_checksum_mismatch_installs_nothing(container):
    bad = container("install-bad")
    assert not bad.file("/usr/local/bin/step-ca").exists
    assert not bad.file("/etc/step-ca/config/ca.json").exists
    assert bad.file("/var/cache/mtls-rollout/step-ca-0.19.0").is_directory
    assert bad.run("ls -A /var/cache/mtls-rollout/step-ca-0.19.0").stdout.strip() == ""
    assert not bad.service("step-ca").is_running
