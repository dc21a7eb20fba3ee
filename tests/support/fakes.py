"""In-memory stand-ins for the function's adapters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqs_consumer.budget import Deadline
from sqs_consumer.errors import QuarantineFailedError
from sqs_consumer.quarantine import QuarantinedMessage


@dataclass
class FakeContext:
    """A Lambda context whose remaining time is set by the test (or counts down)."""

    remaining_ms: list[int] = field(default_factory=lambda: [30_000])
    function_name: str = "consumer"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:consumer"
    aws_request_id: str = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        # Each call takes the next value; the last one stays.
        return self.remaining_ms.pop(0) if len(self.remaining_ms) > 1 else self.remaining_ms[0]


@dataclass
class FakeQuarantine:
    """Keeps quarantined messages; refuses them while ``fail`` is set."""

    fail: bool = False
    sent: list[QuarantinedMessage] = field(default_factory=list)
    # How many messages each send_batch call carried.
    calls: list[int] = field(default_factory=list)

    def send_batch(self, messages: Sequence[QuarantinedMessage], deadline: Deadline) -> list[Exception | None]:
        self.calls.append(len(messages))
        if self.fail:
            return [QuarantineFailedError("DLQ unavailable") for _ in messages]
        self.sent.extend(messages)
        return [None for _ in messages]

    @property
    def message_ids(self) -> list[str]:
        return [message.source_message_id for message in self.sent]
