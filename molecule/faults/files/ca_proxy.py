# Copyright: contributors to mtls.rollout
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A TCP proxy in front of step-ca that fails on purpose, for the faults scenario.

It passes TLS through untouched (the client still verifies step-ca against the pinned
root) and reads only the TLS record headers. That is enough to count signatures
deterministically: the body of a POST /1.0/sign (a CSR and a token) is the only
request record the collection sends that is longer than MIN_SIGN_RECORD bytes
(http.client sends a request's headers and its body as two records).

  --cut-after N   forward the first N sign requests; at the next one, drop it, close
                  every connection and stop listening (the CA "stops" in the middle of a
                  batch: later connections are refused);
  --delay S       hold each answer of the first --slow-connections connections
                  (0: all of them) for S seconds (a slow CA).

It exits after --lifetime seconds at the latest, and logs what it did to --log.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import threading
import time

APPLICATION_DATA = 23
# A sign request's body is about 2 KB (an EC P-256 CSR is 0.5 KB, the token 1 KB);
# request headers are a few hundred bytes, TLS handshake messages and alerts less.
MIN_SIGN_RECORD = 1000


class Proxy:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.lock = threading.Lock()
        self.requests = 0
        self.connections = 0
        self.cut = threading.Event()
        self.sockets: set[socket.socket] = set()
        host, port = args.listen.rsplit(":", 1)
        self.listener = socket.create_server((host, int(port)))
        self.listener.settimeout(0.2)
        target_host, target_port = args.target.rsplit(":", 1)
        self.target = (target_host, int(target_port))
        self.log_file = open(args.log, "a", buffering=1)  # noqa: SIM115 - open for the whole run

    def log(self, text: str) -> None:
        self.log_file.write(f"{time.strftime('%H:%M:%S')} {text}\n")

    def serve(self) -> None:
        deadline = time.monotonic() + self.args.lifetime
        self.log(f"listening on {self.args.listen}, forwarding to {self.args.target}")
        while time.monotonic() < deadline and not self.cut.is_set():
            try:
                client, _address = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break  # closed by a cut
            with self.lock:
                self.connections += 1
                number = self.connections
            threading.Thread(target=self.handle, args=(client, number), daemon=True).start()
        self.listener.close()
        self.log(f"stopped listening after {self.requests} sign request(s)")
        if self.cut.is_set():
            self.close_all()
        else:
            # The lifetime is over: let answers in flight finish for a moment.
            time.sleep(1)

    def close_all(self) -> None:
        with self.lock:
            for sock in list(self.sockets):
                _shutdown(sock)
                sock.close()
            self.sockets.clear()

    def handle(self, client: socket.socket, number: int) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError as exc:
            self.log(f"connection {number}: upstream unreachable: {exc}")
            client.close()
            return
        upstream.settimeout(None)
        with self.lock:
            self.sockets.update((client, upstream))
        slow = self.args.delay > 0 and (
            self.args.slow_connections == 0 or number <= self.args.slow_connections
        )
        self.log(f"connection {number}{' (slow)' if slow else ''}")
        state = {"waiting": False}
        down = threading.Thread(
            target=self.pump_down, args=(upstream, client, state, slow), daemon=True
        )
        down.start()
        self.pump_up(client, upstream, state, number)
        down.join()

    def pump_up(self, client, upstream, state, number) -> None:
        """Client to CA, record by record, counting requests."""
        buffer = b""
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                buffer += data
                while len(buffer) >= 5:
                    length = int.from_bytes(buffer[3:5], "big")
                    if len(buffer) < 5 + length:
                        break
                    record, buffer = buffer[: 5 + length], buffer[5 + length :]
                    if not self.allow(record[0], length, number):
                        return
                    state["waiting"] = True
                    upstream.sendall(record)
        except OSError:
            pass
        finally:
            _shutdown(client, upstream)

    def allow(self, record_type: int, length: int, number: int) -> bool:
        if record_type != APPLICATION_DATA or length < MIN_SIGN_RECORD:
            return True
        with self.lock:
            if self.args.cut_after >= 0 and self.requests >= self.args.cut_after:
                self.log(f"connection {number}: sign request {self.requests + 1} dropped; cut")
                self.cut.set()
                # Refuse new connections now, not at the next turn of the accept loop.
                self.listener.close()
                return False
            self.requests += 1
            self.log(f"connection {number}: sign request {self.requests}")
        return True

    def pump_down(self, upstream, client, state, slow) -> None:
        """CA to client, held back for --delay seconds per answer on a slow connection."""
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                if slow and state["waiting"]:
                    state["waiting"] = False
                    time.sleep(self.args.delay)
                client.sendall(data)
        except OSError:
            pass
        finally:
            _shutdown(client, upstream)


def _shutdown(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="host:port to listen on")
    parser.add_argument("--target", required=True, help="host:port of step-ca")
    parser.add_argument("--cut-after", type=int, default=-1)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--slow-connections", type=int, default=0)
    parser.add_argument("--lifetime", type=float, default=120.0)
    parser.add_argument("--log", required=True)
    Proxy(parser.parse_args()).serve()


if __name__ == "__main__":
    main()
