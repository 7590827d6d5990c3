"""A fault-injecting HTTP proxy on 127.0.0.1 in front of the moto server.

The engine's S3 client is pointed at the proxy (``AWS_ENDPOINT_URL``); the proxy relays each
request to moto unless a :class:`Fault` matches it, in which case it answers with an S3 error
(500, 503 SlowDown), resets the connection (after part of the response body, or instead of any
response), or stalls part-way through the body. Every request is logged with its operation, its
``Range`` and the fault it met, so a test can check what the client did about it. Loopback only.
"""

from __future__ import annotations

import fcntl
import http.client
import socket
import struct
import termios
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["Fault", "FaultProxy", "operation"]

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection",
               "te", "upgrade", "content-length"}


@dataclass
class Fault:
    """What to do to the requests of one S3 operation.

    Attributes:
        operation: ``GetObject``, ``UploadPart``... (see :func:`operation`).
        kind: ``status`` (answer ``status`` with the S3 error ``code``), ``reset`` (a TCP reset:
            after ``after_bytes`` of the response body, or before any response for a request
            with a body), or ``stall`` (``after_bytes`` of the body, then silence for
            ``stall_seconds``, then a close).
        times: how many matching requests get the fault (the following ones pass); -1: all.
        skip: matching requests let through before the fault starts.
    """

    operation: str
    kind: str
    times: int = 1
    status: int = 503
    code: str = "SlowDown"
    after_bytes: int = 1024 * 1024
    stall_seconds: float = 3.0
    skip: int = 0
    hits: int = 0
    seen: int = 0

    def take(self) -> bool:
        """Whether this request gets the fault (counts it)."""
        self.seen += 1
        if self.seen <= self.skip or (self.times >= 0 and self.hits >= self.times):
            return False
        self.hits += 1
        return True


def operation(method: str, path: str, query: dict[str, list[str]]) -> str:
    """The S3 operation of a path-style request (the subset the engine uses)."""
    has_key = path.strip("/").count("/") >= 1
    if "uploadId" in query:
        return {"PUT": "UploadPart", "POST": "CompleteMultipartUpload",
                "DELETE": "AbortMultipartUpload", "GET": "ListParts"}.get(method, method)
    if "uploads" in query:
        return "CreateMultipartUpload" if method == "POST" else "ListMultipartUploads"
    if method == "GET":
        return "GetObject" if has_key else "ListObjects"
    return {"HEAD": "HeadObject" if has_key else "HeadBucket", "PUT": "PutObject",
            "DELETE": "DeleteObject"}.get(method, method)


@dataclass
class FaultProxy:
    """The proxy: ``start()`` it, point the client at :attr:`url`, ``add`` faults, read ``log``."""

    upstream: str
    faults: list[Fault] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._stop = threading.Event()
        self._open: dict[threading.Thread, socket.socket] = {}

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def requests(self, op: str) -> list[dict[str, Any]]:
        with self._lock:
            return [entry for entry in self.log if entry["operation"] == op]

    def start(self) -> str:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True,
                         name="fault-proxy").start()
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        return self.url

    def stop(self) -> None:
        """Stop serving, close the connections the client keeps alive, join their threads.

        A handler thread left blocked on a kept-alive connection wakes when the client's pool
        is collected, possibly while pytest parses a module: CPython 3.11's AST state is shared
        between threads, and that interleaving fails with "AST constructor recursion depth
        mismatch".
        """
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self._lock:
            handlers = list(self._open.items())
        for _, sock in handlers:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread, _ in handlers:
            thread.join(timeout=5)

    def _match(self, op: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.operation == op and fault.take():
                    return fault
        return None


class _QuietServer(ThreadingHTTPServer):
    """Prints no traceback for a dropped client.

    A client that gave up on a stalled or reset response closes its end; the handler's write
    then fails. socketserver would print that traceback, and formatting a traceback in 3.11
    parses source with ``ast`` in this thread while pytest may be parsing in the main one:
    CPython 3.11's AST state is shared, and the two then fail with "AST constructor recursion
    depth mismatch".
    """

    daemon_threads = True  # a kept-alive connection would block a join forever

    def handle_error(self, request: Any, client_address: Any) -> None:
        return


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and "Expect: 100-continue" answered for us
    owner: FaultProxy

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        return

    def setup(self) -> None:
        super().setup()
        with self.owner._lock:
            self.owner._open[threading.current_thread()] = self.connection

    def finish(self) -> None:
        with self.owner._lock:
            self.owner._open.pop(threading.current_thread(), None)
        try:
            super().finish()
        except OSError:
            pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._relay()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if not size:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reset(self) -> None:
        """Close with a TCP reset (SO_LINGER 0): the client sees ECONNRESET.

        A reset drops what is still in the send queue: wait until the peer has it all, so that
        "reset after N bytes" means the client received N bytes.
        """
        for _ in range(500):
            unsent = fcntl.ioctl(self.connection.fileno(), termios.TIOCOUTQ, b"\0" * 4)
            if not struct.unpack("i", unsent)[0]:
                break
            self.owner._stop.wait(0.01)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _relay(self) -> None:
        owner = self.owner
        split = urlsplit(self.path)
        query = parse_qs(split.query, keep_blank_values=True)
        op = operation(self.command, split.path, query)
        body = self._body()
        fault = owner._match(op)
        entry = {"operation": op, "method": self.command, "path": split.path,
                 "part": (query.get("partNumber") or [None])[0],
                 "range": self.headers.get("Range"), "fault": fault.kind if fault else None,
                 "sent": None}
        with owner._lock:
            owner.log.append(entry)
        if fault is not None and fault.kind == "status":
            payload = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{fault.code}</Code>'
                       f"<Message>injected by the fault proxy</Message>"
                       f"<RequestId>fault</RequestId></Error>").encode()
            self.send_response(fault.status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            return
        if fault is not None and fault.kind == "reset" and body:
            self._reset()  # the request was sent whole; no response comes back
            return
        upstream = urlsplit(owner.upstream)
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        conn.request(self.command, self.path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in _HOP_BY_HOP:
                self.send_header(key, value)
        self.send_header("Content-Length",
                         response.getheader("Content-Length", "0") if self.command == "HEAD"
                         else str(len(data)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if fault is None:
            self.wfile.write(data)
            entry["sent"] = len(data)
            return
        sent = min(fault.after_bytes, max(len(data) - 1, 0))
        self.wfile.write(data[:sent])
        self.wfile.flush()
        entry["sent"] = sent
        if fault.kind == "stall":
            owner._stop.wait(fault.stall_seconds)
            self.close_connection = True
            return
        self._reset()
