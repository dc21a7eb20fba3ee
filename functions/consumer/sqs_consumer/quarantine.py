"""Sending poison messages to the dead-letter queue, with the reason attached.

A quarantined record is acknowledged (deleted from the source queue) only after
the DLQ accepted the copy; a failed send makes it a retryable failure, so a
message is never dropped. boto3 is imported and its client created only here,
on first use (see sqs_client.py).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqs_consumer.errors import QuarantineFailedError
from sqs_consumer.observability import logger
from sqs_consumer.sqs_client import default_client

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

# SQS allows 10 message attributes; the quarantine attributes leave room for
# the original ones.
MAX_MESSAGE_ATTRIBUTES = 10
MAX_REASON_CHARS = 1024
ATTRIBUTE_PREFIX = "quarantine."


@dataclass(frozen=True, slots=True)
class QuarantinedMessage:
    """A message on its way to the DLQ, and why."""

    body: str
    kind: str
    reason: str
    source_message_id: str
    source_queue_arn: str
    receive_count: int
    event_type: str | None = None
    message_group_id: str | None = None
    original_attributes: dict[str, Any] | None = None

    def attributes(self, now: datetime) -> dict[str, dict[str, Any]]:
        """SendMessage attributes: the reason first, then original ones while room is left."""
        ours = {
            "kind": self.kind,
            "reason": self.reason[:MAX_REASON_CHARS] or "-",
            "source_message_id": self.source_message_id,
            "source_queue_arn": self.source_queue_arn or "-",
            "receive_count": str(self.receive_count),
            "quarantined_at": now.isoformat(timespec="milliseconds"),
        }
        if self.event_type:
            ours["event_type"] = self.event_type
        attributes: dict[str, dict[str, Any]] = {
            ATTRIBUTE_PREFIX + name: {"DataType": "String", "StringValue": value} for name, value in ours.items()
        }
        for name, value in (self.original_attributes or {}).items():
            if len(attributes) >= MAX_MESSAGE_ATTRIBUTES:
                logger.warning("Original message attribute dropped on quarantine", attribute=name)
                continue
            attributes[name] = _to_send_format(value)
        return attributes


def _to_send_format(value: dict[str, Any]) -> dict[str, Any]:
    """Lambda's event shape (camelCase, base64 binary) to SendMessage's."""
    converted: dict[str, Any] = {"DataType": value.get("dataType", "String")}
    if value.get("stringValue") is not None:
        converted["StringValue"] = value["stringValue"]
    elif value.get("binaryValue") is not None:
        converted["BinaryValue"] = base64.b64decode(value["binaryValue"])
    return converted


class Quarantine(Protocol):
    def send(self, message: QuarantinedMessage) -> None:
        """Store the message in the DLQ or raise ``QuarantineFailedError``."""


class SqsQuarantine:
    """Sends quarantined messages to the DLQ with ``SendMessage``."""

    def __init__(
        self,
        queue_url: str,
        *,
        endpoint_url: str | None = None,
        client_factory: Callable[[str | None], SQSClient] = default_client,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._queue_url = queue_url
        self._endpoint_url = endpoint_url
        self._client_factory = client_factory
        self._client: SQSClient | None = None
        self._clock = clock
        self._fifo = queue_url.endswith(".fifo")

    def send(self, message: QuarantinedMessage) -> None:
        params: dict[str, Any] = {
            "QueueUrl": self._queue_url,
            "MessageBody": message.body,
            "MessageAttributes": message.attributes(self._clock()),
        }
        if self._fifo:
            params["MessageGroupId"] = message.message_group_id or "quarantine"
            # The source message id deduplicates a quarantine retried after a failed send.
            params["MessageDeduplicationId"] = message.source_message_id
        try:
            if self._client is None:
                self._client = self._client_factory(self._endpoint_url)
            self._client.send_message(**params)
        except Exception as exc:  # any failure: the record must stay on the queue
            raise QuarantineFailedError(f"DLQ did not accept message: {exc}") from exc
