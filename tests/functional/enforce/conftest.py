"""A lookup API on 127.0.0.1 (a thread in the test) and a token in moto's Secrets Manager."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

import engine.enforce.api_client as api_client
from engine.enforce.enrich_api import clear_api_cache

TOKEN = "tok-3f9a1c27-do-not-leak"  # noqa: S105 - a test token, checked never to leak
SECRET_ID = "chunkwise/geo-api"


@dataclass
class LookupApi:
    """What the server knows, the faults it plays, and every request it received.

    ``faults`` is consumed one per request, in order: ``429`` (with ``Retry-After: 1``), ``500``,
    ``stall`` (answers after ``stall_s``), ``reset`` (closes the connection with a TCP reset),
    ``401``, ``malformed`` (a result without ``region``), ``badtype`` (``vat_rate`` a string),
    ``notjson``, ``redirect``.
    """

    known: dict[str, dict[str, Any]]
    token: str | None = TOKEN
    faults: list[str] = field(default_factory=list)
    stall_s: float = 1.5
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_fault(self) -> str | None:
        with self.lock:
            return self.faults.pop(0) if self.faults else None

    def answer(self, country: str) -> dict[str, Any] | None:
        found = self.known.get(country)
        return None if found is None else {"country": country, **found}


def _handler(api: LookupApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
            pass

        def finish(self) -> None:
            try:
                super().finish()
            except OSError:
                pass  # the fault closed the socket already

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self._serve(json.loads(body))

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._serve(None)

        def _serve(self, body: Any) -> None:
            with api.lock:
                api.requests.append({"method": self.command, "path": self.path,
                                     "headers": dict(self.headers), "body": body})
            fault = api.next_fault()
            if fault == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
                return
            if fault == "stall":
                time.sleep(api.stall_s)
            if fault in ("429", "500"):
                extra = {"Retry-After": "1"} if fault == "429" else {}
                return self._send(int(fault), {"error": fault}, extra)
            if fault == "redirect":
                return self._send(302, {}, {"Location": "https://elsewhere.example/"})
            if fault == "401" or (api.token is not None and
                                  self.headers.get("Authorization") != f"Bearer {api.token}"):
                return self._send(401, {"error": "unauthorised"})
            if body is None:  # per_key: GET /geo/<country>
                country = unquote(urlsplit(self.path).path.rsplit("/", 1)[-1])
                found = api.answer(country)
                return self._send(404, {}) if found is None else self._send(200, found)
            # Each result echoes the key fields it answers (a key of several columns too).
            results = [{**k, **api.known[k["country"]]} for k in body["keys"]
                       if k["country"] in api.known]
            if fault == "malformed" and results:
                del results[0]["region"]
            if fault == "badtype" and results:
                results[0]["vat_rate"] = "a lot"
            if fault == "notjson":
                return self._send(200, None, raw=b"<html>gateway</html>")
            return self._send(200, {"results": results})

        def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None,
                  raw: bytes | None = None) -> None:
            data = raw if raw is not None else json.dumps(payload).encode()
            try:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                self.close_connection = True  # the client gave up (a stall past its timeout)

    return Handler


COUNTRIES = {
    "FR": {"region": "EMEA-W", "vat_rate": 0.2},
    "DE": {"region": "EMEA-C", "vat_rate": 0.19},
    "US": {"region": "AMER", "vat_rate": 0},
    "JP": {"region": "APAC", "vat_rate": 0.1},
}


@pytest.fixture
def lookup_api() -> Iterator[LookupApi]:
    """The lookup API on 127.0.0.1 with :data:`COUNTRIES`; the caches cleared around it."""
    clear_api_cache()
    api = LookupApi(known=dict(COUNTRIES))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    server.daemon_threads = True
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        clear_api_cache()


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff and pacing waits the client asks for, recorded instead of slept."""
    asked: list[float] = []
    monkeypatch.setattr(api_client, "_sleep", asked.append)
    return asked


@dataclass
class StoredSecret:
    """The token in moto's Secrets Manager: its ``id``, the ``token``, the ``client``."""

    client: Any
    id: str = SECRET_ID
    token: str = TOKEN


@pytest.fixture
def secret(aws_env: None) -> Iterator[StoredSecret]:
    """:data:`TOKEN` stored in moto's Secrets Manager as :data:`SECRET_ID`, as JSON."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        client.create_secret(Name=SECRET_ID, SecretString=json.dumps({"token": TOKEN}))
        clear_api_cache()
        yield StoredSecret(client)
        clear_api_cache()
