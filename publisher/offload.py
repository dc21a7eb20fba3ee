"""Events above the queue's maximum size, stored in the payload bucket as the extended clients store them.

The object is the event's JSON, under a new uuid4 key (what the Java, Python and .NET extended clients
use), and the message carries the pointer body and the ``ExtendedPayloadSize`` attribute written by
sqs_consumer.payloads, so those clients read what this writes. Objects are not deleted here: the
consumer may receive the message more than once, and the bucket's lifecycle rule expires them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Protocol

from publisher.batching import Attributes, Entry
from sqs_consumer.payloads import PayloadPointer, size_attribute
from sqs_consumer.sqs_limits import utf8_size


class S3Writer(Protocol):
    """What is used of an S3 client."""

    @property
    def put_object(self) -> Callable[..., Any]: ...


class PayloadStore:
    """Writes offloaded events to one bucket."""

    def __init__(self, bucket: str, s3: S3Writer) -> None:
        self.bucket = bucket
        self._s3 = s3

    def offload(self, entry: Entry) -> Entry:
        """``entry`` as a pointer to a new key; the event is stored by ``store`` when the entry is sent."""
        pointer = PayloadPointer(self.bucket, str(uuid.uuid4()))
        attributes: Attributes = {**entry.attributes, **size_attribute(utf8_size(entry.body))}
        return Entry(
            entry.index,
            entry.event_id,
            pointer.body(),
            attributes,
            entry.group_id,
            entry.body,
            pointer,
            entry.trace_header,
        )

    def store(self, entry: Entry) -> None:
        """Writes the event of an offloaded entry; botocore's retry mode retries throttling and 5xx."""
        if entry.pointer is None or entry.payload is None:
            raise ValueError(f"entry {entry.event_id} is not offloaded")
        self._s3.put_object(
            Bucket=entry.pointer.bucket,
            Key=entry.pointer.key,
            Body=entry.payload.encode("utf-8", "surrogatepass"),
            ContentType="application/json",
        )
