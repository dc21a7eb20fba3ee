"""A stand-in orders API on loopback for tests: records each call, answers as a test tells it to."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class OrderCall:
    path: str
    idempotency_key: str | None
    body: Any
    at: float


@dataclass
class StandInOrdersApi:
    """``status``: what every POST is answered (201 up, 503 down, 400 refused); ``headers`` go with it."""

    status: int = 201
    headers: dict[str, str] = field(default_factory=dict)
    calls: list[OrderCall] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, call: OrderCall) -> tuple[int, dict[str, str]]:
        with self._lock:
            self.calls.append(call)
            return self.status, dict(self.headers)

    @property
    def keys(self) -> list[str | None]:
        return [call.idempotency_key for call in self.calls]


def _handler_for(api: StandInOrdersApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"null")
            key = self.headers.get("Idempotency-Key")
            status, headers = api.record(OrderCall(self.path, key, body, time.monotonic()))
            answer = json.dumps({"status": status}).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_GET = do_POST  # a health check is answered like an order

        def log_message(self, format: str, *args: Any) -> None:  # the base class's name
            return

    return Handler


@contextmanager
def orders_api(status: int = 201) -> Iterator[StandInOrdersApi]:
    """The stand-in, serving on 127.0.0.1 at a free port until the block ends."""
    api = StandInOrdersApi(status=status)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(api))
    server.daemon_threads = True
    api.url = f"http://127.0.0.1:{server.server_address[1]}/orders"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
