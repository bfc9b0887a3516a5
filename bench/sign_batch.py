#!/usr/bin/env python3
# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: sign N CSRs with a real step-ca three ways, in one run.

(a) baseline: look up and decrypt the provisioner key for every certificate and
    sign one after the other (what a naive per-host loop of step_ca_sign does);
(b) decrypt once, then sign one after the other;
(c) decrypt once, then sign concurrently with StepCAClient.sign_many.

Starts its own step-ca (build/step-ca or $MTLS_STEP_CA_BINARY) on 127.0.0.1 with
material made by the collection's _stepca_bootstrap, prints wall-clock seconds
and ratios against the baseline of the same run, and stops the CA it started.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEALTH_TIMEOUT = 30.0
MAX_COUNT = 1000
MAX_ROUNDS = 10
MAX_RTT_MS = 500


def _make_collection_importable() -> None:
    """Import the collection from this checkout (through build/collections)."""
    try:
        import ansible_collections.mtls.rollout.plugins.module_utils._stepca  # noqa: F401
    except ImportError:
        pass
    else:
        return
    link_root = REPO / "build" / "collections"
    link = link_root / "ansible_collections" / "mtls" / "rollout"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(REPO, link.parent))
    sys.path.insert(0, str(link_root))


_make_collection_importable()

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.mtls.rollout.plugins.module_utils import (
    _jose,
    _stepca,
    _stepca_bootstrap,
)

PROVISIONER = "bench"
CLAIMS = {
    "minTLSCertDuration": "5m",
    "maxTLSCertDuration": "24h",
    "defaultTLSCertDuration": "1h",
}


class BenchTimeout(Exception):
    """The whole run took longer than --max-seconds."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write(path: Path, data: bytes, mode: int = 0o600) -> str:
    path.write_bytes(data)
    path.chmod(mode)
    return str(path)


def _pem(obj) -> bytes:
    return obj.public_bytes(serialization.Encoding.PEM)


class CA:
    """A throw-away step-ca in ``workdir``; :meth:`stop` ends the process it started."""

    def __init__(self, binary: str, workdir: Path, password: bytes) -> None:
        root_key = ec.generate_private_key(ec.SECP256R1())
        root = _stepca_bootstrap.make_root("mtls.rollout Bench Root CA", root_key)
        inter_key = ec.generate_private_key(ec.SECP256R1())
        inter = _stepca_bootstrap.make_intermediate(
            "mtls.rollout Bench Intermediate CA", root, root_key, inter_key
        )
        key_password = secrets.token_hex(16).encode()
        for sub in ("certs", "secrets", "db"):
            (workdir / sub).mkdir()
        root_path = _write(workdir / "certs" / "root_ca.crt", _pem(root), 0o644)
        inter_path = _write(workdir / "certs" / "intermediate_ca.crt", _pem(inter), 0o644)
        key_path = _write(
            workdir / "secrets" / "intermediate_ca_key",
            inter_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(key_password),
            ),
        )
        password_file = _write(workdir / "secrets" / "password", key_password)
        port = _free_port()
        config = _stepca_bootstrap.build_ca_config(
            root_path=root_path,
            crt_path=inter_path,
            key_path=key_path,
            address=f"127.0.0.1:{port}",
            dns_names=["127.0.0.1"],
            db_dir=str(workdir / "db"),
            provisioners=[_stepca_bootstrap.make_jwk_provisioner(PROVISIONER, password, CLAIMS)],
        )
        ca_json = workdir / "ca.json"
        ca_json.write_text(json.dumps(config, indent=2))
        self.port = port
        self.url = f"https://127.0.0.1:{port}"
        self.root_pem = _pem(root).decode()
        self.log = workdir / "step-ca.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own argv, no shell
                [binary, "--password-file", password_file, str(ca_json)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def client(self, timeout: float, port: int | None = None) -> _stepca.StepCAClient:
        url = f"https://127.0.0.1:{port}" if port else self.url
        return _stepca.StepCAClient(url, root_pem=self.root_pem, timeout=timeout, retries=1)

    def wait_healthy(self) -> str:
        client = self.client(timeout=2.0)
        deadline = time.monotonic() + HEALTH_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"step-ca exited with {self.proc.returncode}:\n{self._log_tail()}"
                )
            try:
                if client.health(retry=False).get("status") == "ok":
                    return client.version().get("version", "?")
            except _stepca.StepCAError as exc:
                last = str(exc)
            time.sleep(0.1)  # bounded poll interval
        raise RuntimeError(f"step-ca not healthy after {HEALTH_TIMEOUT:g}s ({last})")

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class DelayProxy:
    """A loopback TCP forwarder that adds ``rtt / 2`` to every chunk in each direction.

    It stands in for a CA across a network: every TLS and HTTP round trip through
    it takes ``rtt`` longer. Chunks keep their order and are delivered at
    arrival + rtt/2, so a burst is delayed once, not once per chunk.
    """

    def __init__(self, target_port: int, rtt: float) -> None:
        self.target_port = target_port
        self.delay = rtt / 2
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._open: dict[tuple[socket.socket, socket.socket], int] = {}
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.settimeout(None)
                # The delay is ours to add: keep Nagle's algorithm out of the numbers.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = (client, upstream)
            with self._lock:
                self._open[pair] = 2  # directions still running
            for src, dst in ((client, upstream), (upstream, client)):
                chunks: queue.Queue = queue.Queue()
                threading.Thread(target=self._read, args=(src, chunks), daemon=True).start()
                threading.Thread(target=self._write, args=(dst, chunks, pair), daemon=True).start()

    def _read(self, src: socket.socket, chunks: queue.Queue) -> None:
        try:
            while True:
                data = src.recv(65536)
                chunks.put((time.monotonic() + self.delay, data))
                if not data:
                    return
        except OSError:
            chunks.put((time.monotonic(), b""))

    def _write(self, dst: socket.socket, chunks: queue.Queue, pair: tuple) -> None:
        try:
            while True:
                due, data = chunks.get(timeout=60)
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    break
                dst.sendall(data)
        except (OSError, queue.Empty):
            pass
        with self._lock:
            if pair not in self._open:  # stop() has closed it already
                return
            self._open[pair] -= 1
            done = self._open[pair] == 0
            if done:
                del self._open[pair]
        if done:  # both directions finished: free the file descriptors
            for sock in pair:
                sock.close()

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        with self._lock:
            pairs = list(self._open)
            self._open.clear()
        for pair in pairs:
            for sock in pair:
                sock.close()


def _csr(index: int) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = f"host-{index:04d}.bench.test"
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _check(signed: list[_stepca.SignedCertificate], count: int, label: str) -> None:
    serials = {item.serial for item in signed}
    if len(signed) != count or len(serials) != count:
        raise RuntimeError(f"{label}: expected {count} distinct certificates, got {len(serials)}")


def _timed(func: Callable[[], list[_stepca.SignedCertificate]], count: int, label: str) -> float:
    start = time.perf_counter()
    signed = func()
    elapsed = time.perf_counter() - start
    _check(signed, count, label)
    return elapsed


def run(args: argparse.Namespace) -> int:
    password = secrets.token_urlsafe(24).encode()
    with tempfile.TemporaryDirectory(prefix="mtls-bench-") as tmp:
        ca = CA(args.binary, Path(tmp), password)
        proxy: DelayProxy | None = None
        try:
            version = ca.wait_healthy()
            if args.rtt_ms:
                proxy = DelayProxy(ca.port, args.rtt_ms / 1000)
            client = ca.client(timeout=args.timeout, port=proxy.port if proxy else None)
            requests = [_stepca.SignRequest(csr=_csr(i), duration="1h") for i in range(args.count)]

            # Untimed warm-up: first TLS handshakes, the CA's database, our imports.
            key = client.provisioner_key(PROVISIONER, password)
            client.sign(key, requests[0])

            entry = client.provisioner(PROVISIONER)
            encrypted = client.encrypted_key(entry)
            samples = []
            for _ in range(5):
                start = time.perf_counter()
                _jose.jwe_decrypt_pbes2(encrypted, password)
                samples.append(time.perf_counter() - start)
            decrypt_seconds = statistics.median(samples)
            iterations = _jose.jwe_header(encrypted).get("p2c")

            def baseline() -> list[_stepca.SignedCertificate]:
                return [
                    client.sign(client.provisioner_key(PROVISIONER, password), request)
                    for request in requests
                ]

            def once_sequential() -> list[_stepca.SignedCertificate]:
                once = client.provisioner_key(PROVISIONER, password)
                return [client.sign(once, request) for request in requests]

            def once_concurrent() -> list[_stepca.SignedCertificate]:
                once = client.provisioner_key(PROVISIONER, password)
                return client.sign_many(once, requests, workers=args.workers)

            modes = [
                ("(a) baseline: decrypt per certificate, sequential", baseline),
                ("(b) decrypt once, sequential", once_sequential),
                (f"(c) decrypt once + {args.workers} workers (sign_many)", once_concurrent),
            ]
            times: dict[str, list[float]] = {label: [] for label, _ in modes}
            for round_number in range(args.rounds):
                # Rotate the order each round so that no mode always runs first or last.
                shift = round_number % len(modes)
                for label, func in modes[shift:] + modes[:shift]:
                    times[label].append(_timed(func, args.count, label))
        finally:
            if proxy is not None:
                proxy.stop()
            ca.stop()

    print(
        f"step-ca {version} on 127.0.0.1; {args.count} CSRs (EC P-256); {args.rounds} round(s),"
        f" median shown; {os.cpu_count()} CPU(s)"
    )
    if args.rtt_ms:
        print(f"added round-trip time: {args.rtt_ms} ms (loopback delay proxy)")
    print(
        f"one provisioner key decryption: {decrypt_seconds * 1000:.1f} ms"
        f" (median of 5, p2c={iterations})"
    )
    base = statistics.median(times[modes[0][0]])
    width = max(len(label) for label, _ in modes)
    for label, _ in modes:
        seconds = statistics.median(times[label])
        ratio = seconds / base
        line = (
            f"{label:<{width}}  {seconds:7.2f} s  {seconds / args.count * 1000:6.1f} ms/cert"
            f"  {ratio:.2f}x of baseline"
        )
        if label != modes[0][0]:
            line += f" ({base / seconds:.1f}x faster)"
        print(line)
    return 0


def _bounded_int(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--count", type=_bounded_int(1, MAX_COUNT), default=40, help="CSRs per mode (40)"
    )
    parser.add_argument(
        "--workers",
        type=_bounded_int(1, 32),
        default=8,
        help="concurrent requests in mode (c) (8)",
    )
    parser.add_argument(
        "--rounds",
        type=_bounded_int(1, MAX_ROUNDS),
        default=1,
        help="repeat the three modes and report medians (1)",
    )
    parser.add_argument(
        "--rtt-ms",
        type=_bounded_int(0, MAX_RTT_MS),
        default=0,
        help="add this round-trip time with a loopback delay proxy, like a remote CA (0)",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds per HTTP request to the CA (10)"
    )
    parser.add_argument(
        "--max-seconds",
        type=_bounded_int(10, 3600),
        default=600,
        help="abort the whole run after this many seconds (600)",
    )
    parser.add_argument(
        "--binary",
        default=os.environ.get("MTLS_STEP_CA_BINARY") or str(REPO / "build" / "step-ca"),
        help="step-ca binary ($MTLS_STEP_CA_BINARY or build/step-ca)",
    )
    args = parser.parse_args(argv)
    if not (os.path.isfile(args.binary) and os.access(args.binary, os.X_OK)):
        parser.error(f"no step-ca binary at {args.binary}; run `make step-ca` or set --binary")

    def _alarm(signum, frame):
        raise BenchTimeout(f"the benchmark took longer than {args.max_seconds}s")

    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(args.max_seconds)
    try:
        return run(args)
    except (BenchTimeout, RuntimeError, _stepca.StepCAError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)


if __name__ == "__main__":
    sys.exit(main())
