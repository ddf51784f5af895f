"""A fault-injecting HTTP reverse proxy: a flaky network path in front of a real server.

`FaultProxy(upstream)` listens on a free loopback port and forwards every
request to `upstream` (the session's Prefect server, the local registry),
unchanged, Host header included (so a registry's upload `Location`s point
back at the proxy and a push keeps going through it). Rules make it fail
chosen requests: the Nth `POST /api/deployments/` answered 500, a dropped
connection, every request after N. Only the path is a double; the servers
behind it are real, and so is whatever they did before a fault.

    with FaultProxy(prefect_server.url) as proxy:
        proxy.fail("POST", r"/api/deployments/", nth=3)             # the 3rd one gets a 500
        proxy.fail("POST", r"/api/deployments/", body=r"flows/c[.]py")  # the one whose body says so
        proxy.fail("PUT", r"/v2/.*/manifests/beta-.*", times=0)     # every matching one
        proxy.fail_after(10, drop=True)                             # the network goes after 10
        proxy.requests                                              # what went through, and how it ended
"""

from __future__ import annotations

import http.client
import re
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# Per-connection headers a proxy must not pass on (RFC 9110 7.6.1).
_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
        "te", "trailer", "transfer-encoding", "upgrade"}


@dataclass
class Rule:
    """Fail the `nth` matching request and the `times - 1` after it (`times=0`: every one from the nth on).

    `status` is the answer (with a JSON `detail`), or `drop` closes the
    connection without one. `forward=True` sends the request to the server
    first and then fails the answer: the write happened, the client cannot know.
    `body` (a regex searched in the request body) picks one request by what it
    says, where counting cannot: a client's retry of a busy answer is a request too.
    """

    method: str | None  # None: any
    path: re.Pattern[str]  # matched in full against the path (no query)
    nth: int = 1
    times: int = 1
    status: int = 500
    drop: bool = False
    forward: bool = False
    body: re.Pattern[bytes] | None = None
    seen: int = 0  # matching requests so far
    fired: int = 0  # faults injected so far

    def hit(self, method: str, path: str, body: bytes) -> bool:
        if (self.method and self.method != method) or not self.path.fullmatch(path):
            return False
        if self.body is not None and not self.body.search(body):
            return False
        self.seen += 1
        if self.seen >= self.nth and (self.times == 0 or self.fired < self.times):
            self.fired += 1
            return True
        return False


@dataclass(frozen=True)
class Seen:
    """One request through the proxy; `status` None when the connection was dropped."""

    method: str
    path: str
    status: int | None
    injected: bool


class FaultProxy:
    def __init__(self, upstream: str):
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.rules: list[Rule] = []
        self.requests: list[Seen] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name=f"fault-proxy-{self.port}", daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`: what a registry address starts with."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    # -- faults ----------------------------------------------------------------------
    def fail(self, method: str | None, path: str, *, nth: int = 1, times: int = 1, status: int = 500,
             drop: bool = False, forward: bool = False, body: str | None = None) -> Rule:
        rule = Rule(method, re.compile(path), nth=nth, times=times, status=status, drop=drop, forward=forward,
                    body=re.compile(body.encode()) if body is not None else None)
        with self.lock:
            self.rules.append(rule)
        return rule

    def fail_after(self, n: int, *, status: int = 500, drop: bool = False) -> Rule:
        """Every request after the first `n` (counted from now) fails: the path goes away."""
        return self.fail(None, r".*", nth=n + 1, times=0, status=status, drop=drop)

    def heal(self) -> None:
        """No more faults (the log stays)."""
        with self.lock:
            self.rules.clear()

    def clear_log(self) -> None:
        with self.lock:
            self.requests.clear()

    def seen(self, method: str, path: str) -> list[Seen]:
        """The requests so far whose method is `method` and whose path matches `path` in full."""
        pattern = re.compile(path)
        with self.lock:
            return [r for r in self.requests if r.method == method and pattern.fullmatch(r.path)]

    def _fault(self, method: str, path: str, body: bytes) -> Rule | None:
        with self.lock:
            for rule in self.rules:
                if rule.hit(method, path, body):
                    return rule
        return None

    def _log(self, seen: Seen) -> None:
        with self.lock:
            self.requests.append(seen)

    # -- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, and `Expect: 100-continue` answered for us

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            return  # quiet: the log is `proxy.requests`

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline().strip():  # trailers, then the blank line
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()  # the CRLF after each chunk
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _handle(self) -> None:
            method = self.command
            path = urlsplit(self.path).path
            body = self._body()
            rule = proxy._fault(method, path, body)
            if rule is not None and not rule.forward:
                return self._inject(rule, method, path)
            status, headers, data = self._forward(method, body)
            if rule is not None:
                return self._inject(rule, method, path)
            proxy._log(Seen(method, path, status, injected=False))
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in _HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            if method == "HEAD":
                # No body, but the length of the one a GET would get (a registry's manifest HEAD).
                length = next((v for k, v in headers if k.lower() == "content-length"), None)
                if length is not None:
                    self.send_header("Content-Length", length)
            elif status not in (204, 304) and not 100 <= status < 200:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if method != "HEAD" and data:
                self.wfile.write(data)

        def _forward(self, method: str, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
            conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=300)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                headers["Content-Length"] = str(len(body))
                if method in ("GET", "HEAD", "DELETE") and not body:
                    headers.pop("Content-Length")
                conn.request(method, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                return resp.status, resp.getheaders(), data
            finally:
                conn.close()

        def _inject(self, rule: Rule, method: str, path: str) -> None:
            if rule.drop:
                proxy._log(Seen(method, path, None, injected=True))
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            proxy._log(Seen(method, path, rule.status, injected=True))
            data = b'{"detail": "injected by the test\'s fault proxy"}'
            self.send_response(rule.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(data)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle

    return Handler
