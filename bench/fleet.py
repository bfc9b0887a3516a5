#!/usr/bin/env python3
# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: a whole certificate rollout on N pseudo-hosts, against the alternatives.

Each pseudo-host is an inventory entry with ``ansible_connection: local`` and a folder
of its own, so what is measured is the controller's cost of the playbook: forks,
module round trips, signing. The same run measures, for every N:

(a) ``role``:  this collection's ``certificate`` role (bench/fleet/role.yml);
(b) ``ownca``: the same job with community.crypto, signed by a CA on the controller
    (bench/fleet/ownca.yml), the baseline the ratios are taken against;
(c) ``naive``: (a)'s host-side steps, but one ``step_ca_sign`` call per host instead
    of the role's batch (bench/fleet/naive.yml).

Each mode runs twice on fresh folders: the first run does everything, the second
should find nothing to do. It reports wall time, tasks executed per host, calls the
step-ca answered, and the peak memory of the ansible-playbook process tree. It starts
its own step-ca on 127.0.0.1 (tests/unit/stepca_server.py) and stops it at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLAYBOOKS = Path(__file__).resolve().parent / "fleet"
MODES = ("ownca", "role", "naive")
MAX_HOSTS = 1000
PROVISIONER = "servers"
CLAIMS = {
    "minTLSCertDuration": "5m",
    "maxTLSCertDuration": "48h",
    "defaultTLSCertDuration": "24h",
}
# Each request step-ca answers is one log line with its path (logfmt).
CA_REQUEST = re.compile(r" path=(\S+) ")
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")

sys.path.insert(0, str(REPO / "tests" / "unit"))

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from stepca_server import RunningCA, start_step_ca

from ansible_collections.mtls.rollout.plugins.module_utils import _stepca_bootstrap


@dataclass
class Result:
    mode: str
    hosts: int
    run: str
    seconds: float
    tasks_per_host: int
    changed_per_host: int
    failed_hosts: int
    ca_calls: int
    sign_calls: int
    peak_rss_mib: float
    profile: list[str]


def tree_rss(root_pid: int) -> int:
    """Resident memory, in bytes, of ``root_pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)  # field 4: ppid
        rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")  # field 24: rss pages
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def run_playbook(playbook: Path, inventory: Path, forks: int, log: Path) -> tuple[float, int, str]:
    """Run ``playbook``; return wall seconds, peak tree RSS in bytes, and its output."""
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=str(REPO / "build" / "collections"),
        ANSIBLE_FORKS=str(forks),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_HOST_KEY_CHECKING="false",
        ANSIBLE_RETRY_FILES_ENABLED="false",
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default",
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
        ANSIBLE_LOCAL_TEMP=str(log.parent / "ansible-tmp"),
    )
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory)]
    with open(log, "wb") as out:
        start = time.perf_counter()
        # The command is ansible-playbook beside this Python, on files this script wrote.
        proc = subprocess.Popen(  # noqa: S603
            [*command, str(playbook)], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO
        )
        peak = 0
        while proc.poll() is None:
            peak = max(peak, tree_rss(proc.pid))
            time.sleep(0.05)
        seconds = time.perf_counter() - start
    return seconds, peak, log.read_text(errors="replace")


def make_ownca(folder: Path) -> tuple[str, str]:
    """A CA for community.crypto's ownca provider; returns (certificate, key) paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bench ownca Root")])
    now = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "ownca.crt", folder / "ownca.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return str(cert_path), str(key_path)


def write_inventory(folder: Path, hosts: int, ca: RunningCA, password: str, ownca) -> Path:
    """An inventory of ``hosts`` local pseudo-hosts, each with its own folder."""
    names = [f"h{index:04d}" for index in range(1, hosts + 1)]
    for name in names:
        (folder / "hosts" / name).mkdir(parents=True)
    inventory = {
        "fleet": {
            "hosts": {name: {"certificate_dir": str(folder / "hosts" / name)} for name in names},
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "certificate_ca_url": ca.url,
                "certificate_ca_root_fingerprint": ca.root_fingerprint,
                "certificate_ca_provisioner_password": password,
                "certificate_signer": "localhost",
                # Empty at the first run of each mode and host count, kept for the second.
                "certificate_ca_root_cache_dir": str(folder / "roots"),
                "certificate_items": [
                    {
                        "name": "svc",
                        "common_name": "{{ inventory_hostname }}",
                        "subject_alt_names": ["DNS:{{ inventory_hostname }}"],
                        "profile": "server",
                    }
                ],
                "bench_ownca_cert": ownca[0],
                "bench_ownca_key": ownca[1],
            },
        }
    }
    path = folder / "inventory.json"
    path.write_text(json.dumps(inventory))
    return path


def count_ca_calls(log: Path, offset: int) -> tuple[int, int, int]:
    """Requests the CA logged after byte ``offset``: (all, signs, new offset)."""
    data = log.read_bytes()
    paths = CA_REQUEST.findall(data[offset:].decode(errors="replace"))
    return len(paths), sum(1 for p in paths if p == "/1.0/sign"), len(data)


def profile(output: str, top: int = 10) -> list[str]:
    """The ``top`` slowest tasks from profile_tasks' summary at the end of ``output``."""
    summary = output.rsplit("TASKS RECAP", 1)[-1] if "TASKS RECAP" in output else ""
    lines = [line.strip() for line in summary.splitlines() if re.search(r" -+ *\d+\.\d+s$", line)]
    return lines[:top]


def recap(output: str, host: str) -> tuple[int, int, int]:
    """(tasks executed, changed) for ``host``, and the number of failed hosts."""
    executed = changed = failed_hosts = 0
    for line in output.splitlines():
        match = RECAP.match(line)
        if not match:
            continue
        if int(match.group(4)) or int(match.group(5)):
            failed_hosts += 1
        if match.group(1) == host:
            # ok= counts every task that ran without failing, changed ones included.
            executed = int(match.group(2)) + int(match.group(5))
            changed = int(match.group(3))
    return executed, changed, failed_hosts


def bench(args: argparse.Namespace) -> list[Result]:
    results: list[Result] = []
    password = secrets.token_urlsafe(24)
    provisioner = _stepca_bootstrap.make_jwk_provisioner(
        PROVISIONER, password, CLAIMS, _stepca_bootstrap.server_only_template()
    )
    with tempfile.TemporaryDirectory(prefix="mtls-fleet-") as tmp:
        (Path(tmp) / "ca").mkdir()
        with start_step_ca(args.binary, Path(tmp) / "ca", [provisioner], name="Fleet Bench") as ca:
            results.extend(_bench_all(args, Path(tmp), ca, password))
    return results


def _bench_all(args: argparse.Namespace, tmp: Path, ca: RunningCA, password: str) -> list[Result]:
    """Every mode at every host count, first and second run, on one CA."""
    results: list[Result] = []
    ownca = make_ownca(tmp)
    offset = 0
    for hosts in args.hosts:
        for mode in args.modes:
            folder = tmp / f"{mode}-{hosts}"
            folder.mkdir()
            inventory = write_inventory(folder, hosts, ca, password, ownca)
            for run in ("first", "second"):
                seconds, peak, output = run_playbook(
                    PLAYBOOKS / f"{mode}.yml", inventory, args.forks, folder / f"{run}.log"
                )
                calls, signs, offset = count_ca_calls(ca.log_path, offset)
                executed, changed, failed = recap(output, "h0001")
                result = Result(
                    mode,
                    hosts,
                    run,
                    seconds,
                    executed,
                    changed,
                    failed,
                    calls,
                    signs,
                    peak / 2**20,
                    profile(output),
                )
                results.append(result)
                print(_row(result), flush=True)
                if failed or not executed:
                    print(output[-3000:], file=sys.stderr)
                if args.keep_logs:
                    keep = Path(args.keep_logs) / f"{mode}-{hosts}-{run}.log"
                    keep.parent.mkdir(parents=True, exist_ok=True)
                    keep.write_text(output)
    return results


HEADER = (
    f"{'mode':<6} {'hosts':>5} {'run':<6} {'seconds':>8} {'tasks/host':>10}"
    f" {'changed/host':>12} {'failed':>6} {'CA calls':>8} {'signs':>6} {'peak MiB':>8}"
)


def _row(r: Result) -> str:
    return (
        f"{r.mode:<6} {r.hosts:>5} {r.run:<6} {r.seconds:>8.1f} {r.tasks_per_host:>10}"
        f" {r.changed_per_host:>12} {r.failed_hosts:>6} {r.ca_calls:>8} {r.sign_calls:>6}"
        f" {r.peak_rss_mib:>8.0f}"
    )


def growth(results: list[Result]) -> list[str]:
    """Seconds per host of each mode and run at each host count, and how that grew."""
    lines = []
    counts = sorted({r.hosts for r in results})
    for mode in dict.fromkeys(r.mode for r in results):
        for run in ("first", "second"):
            found = {r.hosts: r for r in results if r.mode == mode and r.run == run}
            if len(found) < 2:
                continue
            per_host = [f"{found[n].seconds / n:.2f} s/host at {n}" for n in counts if n in found]
            low, high = found[counts[0]], found[counts[-1]]
            change = (high.seconds / high.hosts) / (low.seconds / low.hosts)
            lines.append(
                f"{mode} {run} run: {', '.join(per_host)} ({change:.2f}x per host from"
                f" {low.hosts} to {high.hosts} hosts)"
            )
    return lines


def ratios(results: list[Result]) -> list[str]:
    """Each mode's time as a ratio of ownca's (b), and role (a) against naive (c)."""
    by_key = {(r.mode, r.hosts, r.run): r for r in results}
    lines = []
    for r in results:
        if r.mode == "ownca":
            continue
        base = by_key.get(("ownca", r.hosts, r.run))
        if base:
            lines.append(
                f"{r.mode} vs ownca, {r.hosts} hosts, {r.run} run:"
                f" {r.seconds / base.seconds:.2f}x the time"
                f" ({base.seconds / r.seconds:.2f}x as fast)"
            )
        naive = by_key.get(("naive", r.hosts, r.run))
        if r.mode == "role" and naive:
            lines.append(
                f"role vs naive, {r.hosts} hosts, {r.run} run:"
                f" {naive.seconds / r.seconds:.2f}x as fast"
            )
    return lines


def _host_counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",")]
    if any(not 1 <= count <= MAX_HOSTS for count in counts):
        raise argparse.ArgumentTypeError(f"host counts must be between 1 and {MAX_HOSTS}")
    return counts


def _modes(text: str) -> list[str]:
    modes = text.split(",")
    unknown = set(modes) - set(MODES)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown mode(s): {', '.join(sorted(unknown))}")
    # ownca first: it is the baseline of the ratios.
    return sorted(modes, key=MODES.index)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--hosts", type=_host_counts, default=[50, 200], help="e.g. 50,200")
    parser.add_argument("--forks", type=int, default=10)
    parser.add_argument("--modes", type=_modes, default=list(MODES), help="ownca,role,naive")
    parser.add_argument(
        "--binary",
        default=os.environ.get("MTLS_STEP_CA_BINARY", str(REPO / "build" / "step-ca")),
    )
    parser.add_argument("--keep-logs", metavar="DIR", help="copy each run's output here")
    args = parser.parse_args(argv)
    print(
        f"{os.cpu_count()} CPU(s); forks {args.forks}; pseudo-hosts on ansible_connection"
        " local (the controller's cost); step-ca on 127.0.0.1"
    )
    print(HEADER, flush=True)
    results = bench(args)
    print()
    for line in ratios(results):
        print(line)
    lines = growth(results)
    if lines:
        print()
        for line in lines:
            print(line)
    largest = max(args.hosts)
    for r in results:
        if r.mode == "role" and r.hosts == largest and r.profile:
            print(f"\nrole, {largest} hosts, {r.run} run: the slowest tasks (profile_tasks)")
            for line in r.profile:
                print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
