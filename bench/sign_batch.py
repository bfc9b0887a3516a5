#!/usr/bin/env python3
# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: sign N CSRs with a real step-ca four ways, in one run.

(a) baseline: look up and decrypt the provisioner key for every certificate and
    sign one after the other (what a naive per-host loop of step_ca_sign does);
(b) decrypt once, then sign one after the other;
(c) decrypt once, then sign concurrently with StepCAClient.sign_many (batch mode,
    what step_ca_sign with csrs does);
(d) the practical limit: a minimal direct client, a plain loop with one key
    decryption and every POST on one kept-alive TLS connection.

Starts its own step-ca (build/step-ca or $MTLS_STEP_CA_BINARY) on 127.0.0.1 with
material made by the collection's _stepca_bootstrap (with tests/unit/stepca_server.py,
the step-ca tests' helper), prints wall-clock seconds and ratios against the baseline
of the same run, and stops the CA it started. See bench/README.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import secrets
import signal
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_COUNT = 1000
MAX_ROUNDS = 10
MAX_RTT_MS = 500

# The step-ca tests' helper starts the CA; importing it also puts the collection
# (build/collections) on sys.path, so it comes before the ansible_collections import.
sys.path.insert(0, str(REPO / "tests" / "unit"))

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from stepca_server import RunningCA, start_step_ca

from ansible_collections.mtls.rollout.plugins.module_utils import (
    _jose,
    _stepca,
    _stepca_bootstrap,
    _stepca_token,
)

PROVISIONER = "bench"
CLAIMS = {
    "minTLSCertDuration": "5m",
    "maxTLSCertDuration": "24h",
    "defaultTLSCertDuration": "1h",
}


class BenchTimeout(Exception):
    """The whole run took longer than --max-seconds."""


def _client(ca: RunningCA, timeout: float, port: int | None = None) -> _stepca.StepCAClient:
    """A client pinned to the CA's root, direct or (with ``port``) through the proxy."""
    url = f"https://127.0.0.1:{port}" if port else ca.url
    return _stepca.StepCAClient(url, root_pem=ca.root_pem, timeout=timeout, retries=1)


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


class DirectClient:
    """(d): the least a client can do per certificate, as the practical limit.

    One ``GET /provisioners`` and one key decryption, then for each CSR one token and one
    ``POST /1.0/sign`` on the same TLS connection (HTTP/1.1 keep-alive; step-ca, a Go
    server, keeps it open), verified against the pinned root. No retries, no checks
    beyond the status: only what signing cannot do without.
    """

    def __init__(self, url: str, root_pem: str, root_fingerprint: str, timeout: float) -> None:
        self.url = url
        self.host, port = url.removeprefix("https://").split(":")
        self.port = int(port)
        self.root_fingerprint = root_fingerprint
        self.timeout = timeout
        self.context = ssl.create_default_context(cadata=root_pem)
        self.connections = 0
        self._sock: object = None

    def _send(self, conn: http.client.HTTPSConnection, method: str, path: str, body=None):
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload else {}
        conn.request(method, path, body=payload, headers=headers)
        if conn.sock is not self._sock:
            self._sock = conn.sock
            self.connections += 1
        response = conn.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError(f"direct client: {method} {path} answered {response.status}")
        return json.loads(data)

    def sign_all(self, password: bytes, csrs: list[tuple[str, str]]) -> list[int]:
        """Sign ``csrs`` (PEM, common name); returns the serials."""
        conn = http.client.HTTPSConnection(
            self.host, self.port, context=self.context, timeout=self.timeout
        )
        try:
            entries = self._send(conn, "GET", "/provisioners")["provisioners"]
            entry = next(e for e in entries if e["name"] == PROVISIONER)
            key = _stepca_token.decrypt_provisioner_key(entry, entry["encryptedKey"], password)
            serials = []
            for csr, name in csrs:
                token = _stepca_token.mint_token(
                    key,
                    audience=f"{self.url}/1.0/sign",
                    subject=name,
                    root_fingerprint=self.root_fingerprint,
                    sans=[name],
                )
                answer = self._send(
                    conn, "POST", "/1.0/sign", {"csr": csr, "ott": token, "notAfter": "1h"}
                )
                serials.append(x509.load_pem_x509_certificate(answer["crt"].encode()).serial_number)
            return serials
        finally:
            conn.close()


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


def _check(signed: list, count: int, label: str) -> None:
    serials = {item if isinstance(item, int) else item.serial for item in signed}
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
    provisioner = _stepca_bootstrap.make_jwk_provisioner(PROVISIONER, password, CLAIMS)
    with (
        tempfile.TemporaryDirectory(prefix="mtls-bench-") as tmp,
        start_step_ca(args.binary, Path(tmp), [provisioner], name="mtls.rollout Bench") as ca,
    ):
        proxy: DelayProxy | None = None
        try:
            version = _client(ca, timeout=2.0).version().get("version", "?")
            if args.rtt_ms:
                proxy = DelayProxy(ca.port, args.rtt_ms / 1000)
            client = _client(ca, timeout=args.timeout, port=proxy.port if proxy else None)
            csrs = [(_csr(i), f"host-{i:04d}.bench.test") for i in range(args.count)]
            requests = [_stepca.SignRequest(csr=csr, duration="1h") for csr, _name in csrs]
            url = f"https://127.0.0.1:{proxy.port}" if proxy else ca.url
            direct_client = DirectClient(url, ca.root_pem, ca.root_fingerprint, args.timeout)

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
                outcomes = client.sign_many(once, requests, workers=args.workers)
                failed = [str(outcome.error) for outcome in outcomes if not outcome.ok]
                if failed:
                    raise RuntimeError(f"sign_many: {len(failed)} not signed: {failed[0]}")
                return [outcome.certificate for outcome in outcomes if outcome.certificate]

            def direct() -> list[int]:
                return direct_client.sign_all(password, csrs)

            modes = [
                ("(a) baseline: decrypt per certificate, sequential", baseline),
                ("(b) decrypt once, sequential", once_sequential),
                (f"(c) decrypt once + {args.workers} workers (sign_many)", once_concurrent),
                ("(d) direct client: one decryption, one kept-alive connection", direct),
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
    batch = statistics.median(times[modes[2][0]])
    limit = statistics.median(times[modes[3][0]])
    print(
        f"(d) used {direct_client.connections // max(1, len(times[modes[3][0]]))} TLS"
        f" connection(s) per round for {args.count} signatures"
    )
    print(f"batch mode (c) vs the direct client (d): {batch / limit:.2f}x the time")
    return 0


def _bounded_int(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
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
