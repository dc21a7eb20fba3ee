"""A minimal SQS- and S3-compatible endpoint on loopback, answering each call after a fixed latency.

For the publisher benchmark (benchmarks/publisher.py): moto's server spends 15 to 70 ms of CPU per
call on this 2-CPU machine, so it, not the publisher, would set the rate (docs/decisions.md). This
answers what the publisher calls, over real HTTP/1.1 with keep-alive, in the JSON protocol botocore
speaks to SQS: ``SendMessageBatch`` (checked as SQS checks it: at most 10 entries, distinct ids, the
messages within the queue's maximum in total), ``GetQueueAttributes`` (the maximum), and S3's
``PutObject`` (path style). ``GET /counts`` returns the messages and objects taken.

    python -m benchmarks.sqs_responder --port 8123 [--latency-ms 25] [--max-message-bytes 262144]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqs_consumer.sqs_limits import message_size


class Responder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, latency: float, max_message_bytes: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.latency = latency
        self.max_message_bytes = max_message_bytes
        self.messages = 0
        self.objects = 0
        self.lock = threading.Lock()

    def send_message_batch(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        entries = request.get("Entries", [])
        if not 1 <= len(entries) <= 10:
            return 400, _error("AWS.SimpleQueueService.TooManyEntriesInBatchRequest", f"{len(entries)} entries")
        if len({entry["Id"] for entry in entries}) != len(entries):
            return 400, _error("AWS.SimpleQueueService.BatchEntryIdsNotDistinct", "ids repeat")
        total = sum(message_size(entry["MessageBody"], entry.get("MessageAttributes")) for entry in entries)
        if total > self.max_message_bytes:
            return 400, _error("AWS.SimpleQueueService.BatchRequestTooLong", f"{total} bytes")
        with self.lock:
            self.messages += len(entries)
        successful = [{"Id": entry["Id"], "MessageId": str(uuid.uuid4()),
                       "MD5OfMessageBody": hashlib.md5(entry["MessageBody"].encode()).hexdigest()}
                      for entry in entries]  # fmt: skip
        return 200, {"Successful": successful, "Failed": []}


def _error(code: str, message: str) -> dict[str, Any]:
    return {"__type": code, "message": message}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and the client's
    # delayed ACK hold the second for ~40 ms.
    disable_nagle_algorithm = True
    server: Responder

    def do_POST(self) -> None:
        request = json.loads(self._body() or b"{}")
        time.sleep(self.server.latency)
        target = self.headers.get("X-Amz-Target", "")
        if target.endswith(".SendMessageBatch"):
            status, answer = self.server.send_message_batch(request)
        elif target.endswith(".GetQueueAttributes"):
            status, answer = 200, {"Attributes": {"MaximumMessageSize": str(self.server.max_message_bytes)}}
        else:
            status, answer = 400, _error("UnsupportedOperation", target)
        self._reply(status, json.dumps(answer).encode(), "application/x-amz-json-1.0")

    def do_PUT(self) -> None:
        content = self._body()
        time.sleep(self.server.latency)
        with self.server.lock:
            self.server.objects += 1
        self._reply(200, b"", "application/xml", {"ETag": f'"{hashlib.md5(content).hexdigest()}"'})

    def do_GET(self) -> None:
        counts = {"messages": self.server.messages, "objects": self.server.objects}
        self._reply(200, json.dumps(counts).encode(), "application/json")

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _reply(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sqs_responder", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=25.0)
    parser.add_argument("--max-message-bytes", type=int, default=262_144)
    args = parser.parse_args(argv)
    Responder(args.port, args.latency_ms / 1000, args.max_message_bytes).serve_forever()


if __name__ == "__main__":
    main()
