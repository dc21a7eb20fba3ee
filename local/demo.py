"""The demo mix, and the accounting of where every published message ended up."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from local.event_source import BatchResult
from operations.dlq import DeadLetter, peek
from publisher.client import EventPublisher

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

# Final states, and what each demo message is expected to reach.
SUCCEEDED = "succeeded"
QUARANTINED = "quarantined"
DEAD_LETTERED = "dead-lettered after retries"
IN_FLIGHT = "still in flight"
# A redriven message that was also deleted after success: must never happen.
INCONSISTENT = "inconsistent"


@dataclass(frozen=True)
class DemoMessage:
    label: str
    body: str | dict[str, Any]  # a dict is published through the validating publisher
    expected: str


def _event(event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": f"evt_{uuid.uuid4().hex[:12]}",
        "event_type": event_type,
        "occurred_at": "2026-11-27T10:00:00Z",
        "payload": payload,
    }


def demo_mix() -> list[DemoMessage]:
    """Successes, a slow one, a flaky one, a failing one and four kinds of poison."""
    return [
        *(DemoMessage("hello", _event("hello", {"name": f"user-{i}"}), SUCCEEDED) for i in range(4)),
        *(
            DemoMessage("document.processed", _event("document.processed", {"document_id": f"doc-{i}"}), SUCCEEDED)
            for i in range(2)
        ),
        DemoMessage("hello slow", _event("hello", {"name": "slow", "simulate": "slow", "delay_ms": 300}), SUCCEEDED),
        DemoMessage("hello flaky", _event("hello", {"name": "flaky", "simulate": "flaky"}), SUCCEEDED),
        DemoMessage("hello fail", _event("hello", {"name": "doomed", "simulate": "fail"}), DEAD_LETTERED),
        DemoMessage("malformed JSON", '{"event_id": "evt_broken", "event_type": "hello", ', QUARANTINED),
        DemoMessage("unknown event_type", _event("invoice.paid", {"invoice_id": "inv-1"}), QUARANTINED),
        DemoMessage("invalid payload", _event("document.processed", {"document_id": ""}), QUARANTINED),
        DemoMessage("missing event_id", {"event_type": "hello", "payload": {"name": "x"}}, QUARANTINED),
    ]


def publish(client: SQSClient, queue_url: str, messages: list[DemoMessage], group_id: str | None) -> dict[str, str]:
    """Send the mix; returns message id -> label. Poison bypasses the publisher, as a careless producer would."""
    published: dict[str, str] = {}
    for message in messages:
        valid = isinstance(message.body, dict) and message.expected != QUARANTINED
        if valid:
            assert isinstance(message.body, dict)
            [result] = EventPublisher(queue_url, client).publish([message.body], group_id=group_id)
            if not result.ok or result.message_id is None:
                raise RuntimeError(f"could not publish {message.label}: {result.error}")
            published[result.message_id] = message.label
        else:
            body = message.body if isinstance(message.body, str) else json.dumps(message.body)
            extra: dict[str, Any] = {}
            if group_id:
                extra = {"MessageGroupId": group_id, "MessageDeduplicationId": uuid.uuid4().hex}
            sent = client.send_message(QueueUrl=queue_url, MessageBody=body, **extra)
            published[sent["MessageId"]] = message.label
    return published


def dead_letters(client: SQSClient, queue_url: str) -> dict[str, DeadLetter]:
    """The DLQ's messages by the id they had on the source queue, left in place."""
    return {letter.source_message_id: letter for letter in peek(client, queue_url)}


@dataclass
class Ledger:
    """What the emulated mapping did to each message (fed by its batch callback)."""

    deleted: set[str] = field(default_factory=set)
    failures: Counter[str] = field(default_factory=Counter)
    invocations: Counter[str] = field(default_factory=Counter)
    # When each message was listed (monotonic seconds), to check the retry backoff.
    failure_times: dict[str, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def on_batch(self, result: BatchResult) -> None:
        with self._lock:
            self.deleted.update(result.deleted)
            self.failures.update(result.failed)
            now = time.monotonic()
            for message_id in result.failed:
                self.failure_times.setdefault(message_id, []).append(now)
            self.invocations[result.reason] += 1


def final_states(published: dict[str, str], ledger: Ledger, dead: dict[str, DeadLetter]) -> dict[str, str]:
    """Where each published message is: exactly one state each."""
    states = {}
    for message_id in published:
        letter = dead.get(message_id)
        if letter is not None and letter.quarantined:
            states[message_id] = QUARANTINED
        elif letter is not None:
            states[message_id] = INCONSISTENT if message_id in ledger.deleted else DEAD_LETTERED
        elif message_id in ledger.deleted:
            states[message_id] = SUCCEEDED
        else:
            states[message_id] = IN_FLIGHT
    return states
