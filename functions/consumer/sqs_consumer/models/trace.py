"""X-Ray trace headers: read from a record, taken from the environment, or made new.

SQS carries a message's trace context as its ``AWSTraceHeader`` system attribute (Lambda puts it in
the record's ``attributes``); Lambda gives the invocation's own in ``_X_AMZN_TRACE_ID``. Both read
``Root=1-<8 hex time>-<24 hex>;Parent=<16 hex>;Sampled=<0|1>`` (X-Ray's tracing header), possibly
with more fields (``Lineage=...``), which are kept as they are.

A shape: this module imports nothing of the project, so the publisher, the consumer's records and
the tracing emitter share it (docs/decisions/070-trace-context.md).
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

TRACE_HEADER_ATTRIBUTE = "AWSTraceHeader"
# Lambda's variable for the invocation's trace (and a producer's, when it runs in Lambda or sets it).
TRACE_ENVIRONMENT_VARIABLE = "_X_AMZN_TRACE_ID"

_ROOT = re.compile(r"^1-[0-9a-f]{8}-[0-9a-f]{24}$")
_PARENT = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True, slots=True)
class TraceHeader:
    """One X-Ray tracing header: the trace (``root``), the segment it comes from, and the sampling decision."""

    root: str
    parent: str | None = None
    sampled: bool | None = None

    def __post_init__(self) -> None:
        if not _ROOT.match(self.root):
            raise ValueError(f"not an X-Ray trace id: {self.root!r} (1-<8 hex time>-<24 hex>)")
        if self.parent is not None and not _PARENT.match(self.parent):
            raise ValueError(f"not an X-Ray segment id: {self.parent!r} (16 hex)")

    def __str__(self) -> str:
        parts = [f"Root={self.root}"]
        if self.parent is not None:
            parts.append(f"Parent={self.parent}")
        if self.sampled is not None:
            parts.append(f"Sampled={int(self.sampled)}")
        return ";".join(parts)

    @classmethod
    def parse(cls, text: str | None) -> TraceHeader | None:
        """The header in ``text``; None when it has no valid Root (a header is a hint, never a failure)."""
        if not text:
            return None
        fields = _fields(text)
        sampled = {"0": False, "1": True}.get(fields.get("Sampled", ""))
        try:
            return cls(fields.get("Root", ""), fields.get("Parent"), sampled)
        except ValueError:
            return None

    @classmethod
    def new(
        cls,
        *,
        sampled: bool = False,
        clock: Callable[[], float] = time.time,
        random_hex: Callable[[int], str] = secrets.token_hex,
    ) -> TraceHeader:
        """A new trace: its id begins with the time in seconds (X-Ray refuses ids older than 30 days)."""
        return cls(f"1-{int(clock()):08x}-{random_hex(12)}", random_hex(8), sampled)

    def child(self, parent: str) -> TraceHeader:
        """The same trace, from the segment ``parent`` on."""
        return TraceHeader(self.root, parent, self.sampled)


def trace_id(header: str | None) -> str | None:
    """The trace id (Root) of a tracing header, without building a ``TraceHeader``: read for every
    record a log line is written about. None when there is none."""
    if not header:
        return None
    start = header.find("Root=")
    if start < 0:
        return None
    end = header.find(";", start)
    root = header[start + 5 : end if end >= 0 else None]
    return root if _ROOT.match(root) else None


def trace_attribute(header: str) -> dict[str, dict[str, str]]:
    """``MessageSystemAttributes`` carrying an X-Ray trace header (the one system attribute SQS takes)."""
    return {TRACE_HEADER_ATTRIBUTE: {"DataType": "String", "StringValue": header}}


def current(environ: Mapping[str, str] = os.environ) -> TraceHeader | None:
    """The trace the process runs in, when it runs in one (in Lambda, the invocation's)."""
    return TraceHeader.parse(environ.get(TRACE_ENVIRONMENT_VARIABLE))


def for_message(environ: Mapping[str, str] = os.environ) -> str:
    """The header a producer stamps on a message: its current trace when it has one, else a new trace
    (not sampled: nothing recorded the producer's side of it, yet the id ties the logs together)."""
    found = current(environ)
    return str(found if found is not None else TraceHeader.new())


def _fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in text.split(";"):
        name, _, value = part.strip().partition("=")
        if name and value:
            fields.setdefault(name, value)
    return fields
