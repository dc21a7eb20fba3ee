"""X-Ray subsegments of each handler call, sent to Lambda's X-Ray daemon without the X-Ray SDK.

With active tracing (the stage's ``tracing``), Lambda records each invocation's segment and gives
its id as ``Parent`` in ``_X_AMZN_TRACE_ID``, set anew for each invocation. Under it, the consumer adds
one subsegment per handler call: the event type as its name; the event id, the disposition and the
message's own trace id (its ``AWSTraceHeader``, the producer's) as annotations X-Ray can search by.
They are segment documents sent over UDP to ``AWS_XRAY_DAEMON_ADDRESS``, a header line and the JSON
document per datagram, as the SDKs send them: the standard library, no SDK import (~270 ms of cold
start), nothing sent when the invocation is not sampled (docs/decisions/071-tracing-without-the-sdk.md).

A send never fails a batch: UDP gives no answer, and a refused or unroutable datagram is dropped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from sqs_consumer.models.trace import TRACE_ENVIRONMENT_VARIABLE, TraceHeader

if TYPE_CHECKING:
    import socket

DAEMON_HEADER = b'{"format": "json", "version": 1}\n'
DEFAULT_DAEMON_ADDRESS = "127.0.0.1:2000"
# Sends between two looks at the clock.
STOP_CHECK_EVERY = 100
# X-Ray's annotation values are kept short: an event id or type longer than this is cut.
MAX_ANNOTATION_CHARS = 250


def daemon_address(text: str | None) -> tuple[str, int]:
    """``host:port``, or the SDKs' ``tcp:host:port udp:host:port`` form (the UDP one is taken)."""
    value = (text or DEFAULT_DAEMON_ADDRESS).strip()
    for part in value.split():
        if part.startswith("udp:"):
            value = part.removeprefix("udp:")
            break
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"AWS_XRAY_DAEMON_ADDRESS is not host:port: {text!r}")
    return host, int(port)


class SegmentEmitter:
    """Sends the subsegments of sampled invocations to the X-Ray daemon."""

    def __init__(
        self,
        address: tuple[str, int],
        *,
        environ: Mapping[str, str] = os.environ,
        new_id: Callable[[], str] = lambda: os.urandom(8).hex(),
    ) -> None:
        self._address = address
        self._environ = environ
        self._new_id = new_id
        self._socket: socket.socket | None = None

    def begin(self) -> BatchTrace | None:
        """The invocation's trace, when Lambda sampled it and names its segment; else None (nothing sent)."""
        header = TraceHeader.parse(self._environ.get(TRACE_ENVIRONMENT_VARIABLE))
        if header is None or header.parent is None or header.sampled is not True:
            return None
        return BatchTrace(header)

    def send(self, documents: list[dict[str, object]], *, stop: Callable[[], bool] = lambda: False) -> int:
        """Each document in a datagram of its own, until ``stop`` says the time kept for returning has come
        (a batch of thousands sends for milliseconds); how many were handed to the network."""
        sent = 0
        for index, document in enumerate(documents):
            if index % STOP_CHECK_EVERY == 0 and stop():
                break
            document.setdefault("id", self._new_id())
            payload = DAEMON_HEADER + json.dumps(document, separators=(",", ":")).encode()
            try:
                self._udp().sendto(payload, self._address)
            except OSError:  # no daemon (ECONNREFUSED from an earlier datagram), a full buffer: dropped
                continue
            sent += 1
        return sent

    def _udp(self) -> socket.socket:
        if self._socket is None:
            import socket  # noqa: PLC0415  # deferred: a function that does not trace never imports it

            self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._socket.setblocking(False)
        return self._socket


class BatchTrace:
    """One invocation's handler calls, as subsegments of its segment."""

    __slots__ = ("calls", "header")

    def __init__(self, header: TraceHeader) -> None:
        self.header = header
        # (event type, event id, message trace id, start and end in epoch seconds, what tells its outcome:
        # the disposition, or the record whose disposition may still change, as a refused quarantine does)
        self.calls: list[tuple[str, str, str | None, float, float, object]] = []

    def add(
        self, event_type: str, event_id: str, message_trace: str | None, span: tuple[float, float], outcome: object
    ) -> None:
        """One handler call: ``span`` is its start and end in epoch seconds."""
        self.calls.append((event_type, event_id, message_trace, span[0], span[1], outcome))

    def documents(self, outcome: Callable[[object], tuple[str, bool]]) -> list[dict[str, object]]:
        """The subsegment documents; ``outcome`` names a disposition and says whether it is an error."""
        documents: list[dict[str, object]] = []
        for event_type, event_id, message_trace, start, end, disposition in self.calls:
            name, error = outcome(disposition)
            annotations = {"event_type": event_type[:MAX_ANNOTATION_CHARS],
                           "event_id": event_id[:MAX_ANNOTATION_CHARS], "disposition": name}  # fmt: skip
            if message_trace is not None:
                annotations["message_trace_id"] = message_trace
            document: dict[str, object] = {
                "name": event_type[:MAX_ANNOTATION_CHARS] or "handler",
                "trace_id": self.header.root,
                "parent_id": self.header.parent,
                "type": "subsegment",
                "start_time": round(start, 6),
                "end_time": round(max(end, start), 6),
                "annotations": annotations,
            }
            if error:
                document["error"] = True
            documents.append(document)
        return documents
