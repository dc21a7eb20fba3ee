"""What a handler is told about the SQS message carrying its event, and what carried it there.

Shapes only: this module imports nothing of the logic that fills them (the registry types handlers
with ``RecordInfo``; the pipeline fills an ``Envelope`` as it unwraps a body, envelopes.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqs_consumer.models.trace import TRACE_HEADER_ATTRIBUTE, trace_id

if TYPE_CHECKING:
    from sqs_consumer.models.base import BaseEvent
    from sqs_consumer.models.envelopes import EventBridgeEvent, SnsNotification
    from sqs_consumer.payloads import PayloadPointer


class Envelope:
    """What carried the event to the queue besides SQS (docs/design.md §3): the SNS notification
    that wrapped it, the EventBridge event it came in, the S3 pointer its payload was offloaded behind.

    Filled as the body is unwrapped: a record quarantined half-way keeps what was found.
    """

    __slots__ = ("eventbridge", "payload_pointer", "payload_size", "sns")

    def __init__(self) -> None:
        self.sns: SnsNotification | None = None
        self.eventbridge: EventBridgeEvent | None = None
        self.payload_pointer: PayloadPointer | None = None
        # The size the message attribute announced (ExtendedPayloadSize or SQSLargePayloadSize).
        self.payload_size: int | None = None

    def __bool__(self) -> bool:
        return self.sns is not None or self.eventbridge is not None or self.payload_pointer is not None

    def log_fields(self) -> dict[str, object]:
        """The keys a per-record log line carries for this envelope (none for the event alone)."""
        fields: dict[str, object] = {}
        if self.sns is not None:
            fields.update(sns_message_id=self.sns.message_id, topic_arn=self.sns.topic_arn)
        if self.eventbridge is not None:
            fields.update(eventbridge_id=self.eventbridge.id, eventbridge_source=self.eventbridge.source,
                          eventbridge_detail_type=self.eventbridge.detail_type)  # fmt: skip
        if self.payload_pointer is not None:
            fields.update(payload=str(self.payload_pointer), payload_size=self.payload_size)
        return fields

    def __repr__(self) -> str:
        return f"Envelope({', '.join(f'{name}={value!r}' for name, value in self.log_fields().items())})"


# The envelope of an event that came alone, in the SQS body: shared, never filled.
NO_ENVELOPE = Envelope()


class RecordInfo:
    """What a handler may need to know about the SQS message carrying its event.

    Read from the record on access: most records never need their receive count parsed, and
    building this view costs one object per record (it is made for thousands a batch). An event
    that came wrapped (SNS, EventBridge) or offloaded (S3) has its ``envelope``; one that came
    alone shares the empty one, which costs its record nothing.
    """

    __slots__ = ("_attributes", "message_id")

    def __init__(self, record: Mapping[str, Any]) -> None:
        self.message_id: str = record["messageId"]
        self._attributes: Mapping[str, Any] = record.get("attributes") or {}

    @property
    def receive_count(self) -> int:
        return int(self._attributes.get("ApproximateReceiveCount", 1))

    @property
    def sent_timestamp_ms(self) -> int:
        return int(self._attributes.get("SentTimestamp", 0))

    @property
    def message_group_id(self) -> str | None:
        group: str | None = self._attributes.get("MessageGroupId")
        return group

    @property
    def trace_header(self) -> str | None:
        """The message's X-Ray trace header (``AWSTraceHeader``), as its producer, SNS or EventBridge set it."""
        header: str | None = self._attributes.get(TRACE_HEADER_ATTRIBUTE)
        return header

    @property
    def trace_id(self) -> str | None:
        """The trace id of the message's trace header: every log line about the record carries it."""
        return trace_id(self._attributes.get(TRACE_HEADER_ATTRIBUTE))

    @property
    def envelope(self) -> Envelope:
        return NO_ENVELOPE

    def emit(self, event: BaseEvent | Mapping[str, Any], *, to: str) -> str:
        """Send ``event`` (an event model, or a mapping with ``event_type`` and ``payload``) to the declared
        destination ``to`` once this record's handler has returned, exactly once: its id is derived from
        this event's and its position (returned). Only the records a consumer hands its handlers emit."""
        raise NotImplementedError("follow-ups are emitted through the record the consumer hands a handler")

    @property
    def sns(self) -> SnsNotification | None:
        """The SNS notification the event came in (raw message delivery off): MessageId, TopicArn,
        Subject, MessageAttributes."""
        return self.envelope.sns

    @property
    def eventbridge(self) -> EventBridgeEvent | None:
        """The EventBridge event the event came in: id, source, detail-type, resources, time."""
        return self.envelope.eventbridge

    @property
    def payload_pointer(self) -> PayloadPointer | None:
        """Where the payload was offloaded (S3 bucket and key), when it was."""
        return self.envelope.payload_pointer

    def __repr__(self) -> str:
        envelope = self.envelope
        return (f"RecordInfo(message_id={self.message_id!r}, receive_count={self.receive_count}, "
                f"sent_timestamp_ms={self.sent_timestamp_ms}, message_group_id={self.message_group_id!r}"
                + (f", envelope={envelope!r})" if envelope else ")"))  # fmt: skip
