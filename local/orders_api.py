"""A stand-in orders API on loopback: what the ``order.placed`` handler calls when ORDERS_API_URL is unset.

It records every call it receives (time, method, path, ``Idempotency-Key``, what it answered) and can be
taken down and brought back. How it is down (decision 061):

- ``reset`` (the default): it still accepts the connection and reads the request, then closes it without
  an answer. The client sees a connection error, as with a refused connection, and the stand-in can count
  the calls it received while down (a refused connection leaves no trace on the server);
- ``refuse``: the port is closed, connections are refused; nothing is recorded while down;
- ``503``: it answers 503 Service Unavailable, as a load balancer with no healthy target does.

Up, a POST is answered 201 with the order's id, a GET (a health check) 200.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from local.processes import LOOPBACK

OUTAGE_MODES = ("reset", "refuse", "503")
# The function's setting: where the order.placed handler POSTs.
ORDERS_API_URL = "ORDERS_API_URL"


@dataclass(frozen=True)
class OrderCall:
    at: float  # wall clock, seconds since the epoch
    method: str
    path: str
    idempotency_key: str | None
    status: int | None  # None: the connection was closed without an answer
    down: bool


def _handler(api: OrdersApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            api.answer(self)

        def do_GET(self) -> None:
            api.answer(self)

        def log_message(self, format: str, *args: Any) -> None:  # the base class's name
            return

    return Handler


class OrdersApi:
    """The stand-in, serving on ``127.0.0.1:port`` (a free port by default) once started."""

    def __init__(self, *, port: int = 0, outage: str = "reset") -> None:
        if outage not in OUTAGE_MODES:
            raise ValueError(f"outage must be one of {', '.join(OUTAGE_MODES)}, not {outage!r}")
        self.outage = outage
        self._lock = threading.Lock()
        self._calls: list[OrderCall] = []
        self._down_since: float | None = None
        self.outages: list[tuple[float, float | None]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = port
        self.started = False

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/orders"

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def start(self) -> OrdersApi:
        server = ThreadingHTTPServer((LOOPBACK, self.port), _handler(self))
        server.daemon_threads = True
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="orders-api", daemon=True
        )
        self._thread.start()
        self.started = True
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def take_down(self) -> None:
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since = time.time()
            self.outages.append((self._down_since, None))
        if self.outage == "refuse":
            self.stop()

    def bring_back(self) -> None:
        with self._lock:
            if self._down_since is None:
                return
            self.outages[-1] = (self._down_since, time.time())
            self._down_since = None
        if self.outage == "refuse":
            self.start()

    @property
    def calls(self) -> list[OrderCall]:
        with self._lock:
            return list(self._calls)

    def answer(self, request: BaseHTTPRequestHandler) -> None:
        down = self.down
        status = self._status(request.command, down)
        key = request.headers.get("Idempotency-Key")
        with self._lock:
            self._calls.append(OrderCall(time.time(), request.command, request.path, key, status, down))
        if status is None:  # close with a reset, before any answer
            request.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            request.close_connection = True
            return
        body = json.dumps({"order_id": key} if status == HTTPStatus.CREATED else {"status": status}).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def _status(self, method: str, down: bool) -> int | None:
        if down:
            return None if self.outage == "reset" else HTTPStatus.SERVICE_UNAVAILABLE
        return HTTPStatus.CREATED if method == "POST" else HTTPStatus.OK
