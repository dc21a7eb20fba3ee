"""A test kit for handlers: build SQS events, run them through the real consumer in memory, assert
on each record's disposition. For tests only: the function never imports it, and the deployed asset
leaves it out.

    from sqs_consumer.testing import run_batch

    def test_a_hello_without_a_name_is_quarantined():
        result = run_batch({"event_id": "evt_1", "event_type": "hello", "payload": {"name": "x"}},
                           {"event_id": "evt_2", "event_type": "hello", "payload": {}})
        assert result.succeeded == ["evt_1"]
        assert result.quarantined["evt_2"].kind == "invalid_payload"

``events`` builds Lambda's SQS events and every upstream shape by hand; ``fakes`` holds the
in-memory DLQ, idempotency store, S3, follow-up sender (what handlers emitted), Lambda context and clock.
"""

from sqs_consumer.testing import events
from sqs_consumer.testing.fakes import (
    FakeClock,
    FakeContext,
    InMemoryDLQ,
    InMemoryIdempotency,
    InMemoryS3,
    InMemorySender,
)
from sqs_consumer.testing.run import BatchResult, RecordOutcome, run_batch

__all__ = ["BatchResult", "FakeClock", "FakeContext", "InMemoryDLQ", "InMemoryIdempotency", "InMemoryS3",
           "InMemorySender", "RecordOutcome", "events", "run_batch"]  # fmt: skip
