"""A minimal SQS- and S3-compatible endpoint on loopback, answering each call after a fixed latency.

For the publisher benchmark (benchmarks/publisher.py): moto's server spends 15 to 70 ms of CPU per
call on this 2-CPU machine, so it, not the publisher, would set the rate (docs/decisions/048-publisher-at-scale.md).
This answers what the publisher calls, over real HTTP/1.1 with keep-alive, in the JSON protocol botocore
speaks to SQS: ``SendMessageBatch`` (checked as SQS checks it: at most 10 entries, distinct ids, the
messages within the queue's maximum in total), ``GetQueueAttributes`` (the maximum), and S3's
``PutObject`` (path style). ``GET /counts`` returns the messages and objects taken.

One asyncio loop serves every connection: a thread per connection, as http.server has, made the
stand-in itself contend for its interpreter under 16 connections and answer in 40 ms and more instead
of the latency asked for, which is SQS's part, not the publisher's.

    python -m benchmarks.sqs_responder --port 8123 [--latency-ms 25] [--max-message-bytes 262144]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import uuid
from typing import Any

from sqs_consumer.sqs_limits import message_size


class Responder:
    def __init__(self, latency: float, max_message_bytes: int) -> None:
        self.latency = latency
        self.max_message_bytes = max_message_bytes
        self.messages = 0
        self.objects = 0

    def send_message_batch(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        entries = request.get("Entries", [])
        if not 1 <= len(entries) <= 10:
            return 400, _error("AWS.SimpleQueueService.TooManyEntriesInBatchRequest", f"{len(entries)} entries")
        if len({entry["Id"] for entry in entries}) != len(entries):
            return 400, _error("AWS.SimpleQueueService.BatchEntryIdsNotDistinct", "ids repeat")
        total = sum(message_size(entry["MessageBody"], entry.get("MessageAttributes")) for entry in entries)
        if total > self.max_message_bytes:
            return 400, _error("AWS.SimpleQueueService.BatchRequestTooLong", f"{total} bytes")
        self.messages += len(entries)
        successful = [{"Id": entry["Id"], "MessageId": str(uuid.uuid4()),
                       "MD5OfMessageBody": hashlib.md5(entry["MessageBody"].encode()).hexdigest()}
                      for entry in entries]  # fmt: skip
        return 200, {"Successful": successful, "Failed": []}

    async def answer(self, method: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes, dict[str, str]]:
        """Status, body and headers for one request, ``latency`` after it arrived (counts at once)."""
        if method == "GET":
            return 200, json.dumps({"messages": self.messages, "objects": self.objects}).encode(), {}
        await asyncio.sleep(self.latency)
        if method == "PUT":
            self.objects += 1
            return 200, b"", {"ETag": f'"{hashlib.md5(body).hexdigest()}"'}
        target = headers.get("x-amz-target", "")
        if target.endswith(".SendMessageBatch"):
            status, answer = self.send_message_batch(json.loads(body or b"{}"))
        elif target.endswith(".GetQueueAttributes"):
            status, answer = 200, {"Attributes": {"MaximumMessageSize": str(self.max_message_bytes)}}
        else:
            status, answer = 400, _error("UnsupportedOperation", target)
        return status, json.dumps(answer).encode(), {"Content-Type": "application/x-amz-json-1.0"}

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One keep-alive connection: requests answered in turn until the client closes it."""
        try:
            while request := await _read_request(reader):
                status, body, headers = await self.answer(*request)
                reason = "OK" if status == 200 else "Bad Request"
                fields = (f"{name}: {value}" for name, value in headers.items())
                lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", *fields]
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes] | None:
    head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
    if not head:
        return None
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines if line)
    }
    if "chunked" in headers.get("transfer-encoding", ""):
        chunks = []
        while size := int((await reader.readline()).split(b";")[0], 16):
            chunks.append(await reader.readexactly(size))
            await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass  # trailers
        body = b"".join(chunks)
    else:
        body = await reader.readexactly(int(headers.get("content-length", 0)))
    return request_line.split(" ", 1)[0], headers, body


def _error(code: str, message: str) -> dict[str, Any]:
    return {"__type": code, "message": message}


async def _serve(port: int, responder: Responder) -> None:
    # Headers and body go out in one write; asyncio sets TCP_NODELAY on its sockets.
    server = await asyncio.start_server(responder.serve, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sqs_responder", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=25.0)
    parser.add_argument("--max-message-bytes", type=int, default=262_144)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.port, Responder(args.latency_ms / 1000, args.max_message_bytes)))


if __name__ == "__main__":
    main()
