# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How _stepca's client uses connections, against the real step-ca: one kept-alive TLS
connection per thread for the requests verified against the pinned root; a connection the
CA closed is replaced before a signature is sent on it; the environment's HTTPS proxy is
still used (as urllib, which the client used before, did)."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time

import pytest
from conftest import CLIENTS_PASSWORD, make_csr

from ansible_collections.mtls.rollout.plugins.module_utils import _stepca


class Forwarder:
    """A loopback TCP forwarder to the CA that counts the connections it accepts.

    With ``connect_proxy`` it is an HTTP CONNECT proxy instead: it reads the CONNECT
    line, records the target, and forwards to the CA whatever the target.
    """

    def __init__(self, target_port: int, connect_proxy: bool = False) -> None:
        self.target_port = target_port
        self.connect_proxy = connect_proxy
        self.accepted = 0
        self.targets: list[str] = []
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            client.settimeout(10)
            if self.connect_proxy:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = client.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                self.targets.append(head.split(b"\r\n", 1)[0].decode())
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            self._pairs.append((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close_connections(self) -> None:
        """Close every open connection, as a CA does after its idle timeout."""
        for pair in self._pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        self._pairs.clear()

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        self.close_connections()


@pytest.fixture
def forwarder(step_ca):
    port = int(step_ca.url.rsplit(":", 1)[1])
    running = Forwarder(port)
    yield running
    running.stop()


def _client(step_ca, port: int) -> _stepca.StepCAClient:
    return _stepca.StepCAClient(
        f"https://127.0.0.1:{port}", root_pem=step_ca.root_pem, retries=0, timeout=10
    )


def test_sequential_requests_share_one_connection(step_ca, forwarder):
    client = _client(step_ca, forwarder.port)
    key = client.provisioner_key("clients", CLIENTS_PASSWORD.encode())
    serials = {
        client.sign(key, _stepca.SignRequest(csr=make_csr(f"keep-{n}.example.test"))).serial
        for n in range(5)
    }
    assert len(serials) == 5
    # The provisioner lookup and five signatures, all on one TLS connection.
    assert forwarder.accepted == 1


def test_a_batch_opens_one_connection_per_worker_at_most(step_ca, forwarder):
    client = _client(step_ca, forwarder.port)
    key = client.provisioner_key("clients", CLIENTS_PASSWORD.encode())
    requests = [_stepca.SignRequest(csr=make_csr(f"batch-{n}.example.test")) for n in range(12)]
    outcomes = client.sign_many(key, requests, workers=3)
    assert all(outcome.ok for outcome in outcomes)
    assert forwarder.accepted <= 1 + 3  # the lookup's, then one per worker thread


def test_a_connection_the_ca_closed_is_replaced_before_a_signature(step_ca, forwarder):
    client = _client(step_ca, forwarder.port)
    key = client.provisioner_key("clients", CLIENTS_PASSWORD.encode())
    client.sign(key, _stepca.SignRequest(csr=make_csr("before.example.test")))
    forwarder.close_connections()
    # Wait (bounded) until the client's socket sees the end of the connection.
    sock = client._kept.conn.sock
    deadline = time.monotonic() + 5
    while not select.select([sock], [], [], 0.05)[0]:
        assert time.monotonic() < deadline, "the closed connection never became readable"
    signed = client.sign(key, _stepca.SignRequest(csr=make_csr("after.example.test")))
    assert signed.subject == "CN=after.example.test"
    assert forwarder.accepted == 2


def test_the_bootstrap_request_is_never_kept(step_ca, forwarder):
    """The root is fetched without verification; that connection must not carry the
    verified requests that follow."""
    client = _stepca.StepCAClient(
        f"https://127.0.0.1:{forwarder.port}",
        root_fingerprint=step_ca.root_fingerprint,
        retries=0,
    )
    assert client.health() == {"status": "ok"}
    assert client.version()["version"]
    assert forwarder.accepted == 2  # the bootstrap's own, then one kept for the rest


def test_the_environments_https_proxy_is_used(step_ca, monkeypatch):
    port = int(step_ca.url.rsplit(":", 1)[1])
    proxy = Forwarder(port, connect_proxy=True)
    try:
        monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("no_proxy", "")
        for name in ("HTTPS_PROXY", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        client = _stepca.StepCAClient(
            "https://localhost:" + str(port), root_pem=step_ca.root_pem, retries=0
        )
        assert client.health() == {"status": "ok"}
        assert [line.rsplit(" ", 1)[0] for line in proxy.targets] == [f"CONNECT localhost:{port}"]
        monkeypatch.setenv("no_proxy", "localhost")
        assert _stepca._https_proxy("localhost") is None
    finally:
        proxy.stop()


def test_a_kept_connection_is_reused_when_its_descriptor_is_above_1023(step_ca, forwarder):
    """select() cannot watch a descriptor >= FD_SETSIZE (1024) and raises ValueError; a
    controller or signer with many files open must still reuse (or replace) its connection."""
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if max(soft, hard) < 1200:
        pytest.skip("this machine allows fewer than 1200 open files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    spare = []
    try:
        while True:  # fill the low descriptors, so the client's socket gets a high one
            spare.append(os.open(os.devnull, os.O_RDONLY))
            if spare[-1] >= 1030:
                break
        client = _client(step_ca, forwarder.port)
        key = client.provisioner_key("clients", CLIENTS_PASSWORD.encode())
        assert client._kept.conn.sock.fileno() >= 1024
        signed = client.sign(key, _stepca.SignRequest(csr=make_csr("high-fd.example.test")))
        assert signed.subject == "CN=high-fd.example.test"
        assert forwarder.accepted == 1  # the lookup's connection was reused for the signature
        forwarder.close_connections()
        sock = client._kept.conn.sock
        deadline = time.monotonic() + 5
        while not _stepca._closed_by_peer(sock):
            assert time.monotonic() < deadline, "the closed connection never became readable"
        again = client.sign(key, _stepca.SignRequest(csr=make_csr("high-fd-2.example.test")))
        assert again.subject == "CN=high-fd-2.example.test"
        assert forwarder.accepted == 2
    finally:
        for descriptor in spare:
            os.close(descriptor)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
