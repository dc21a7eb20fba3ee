"""The demo mix, and the accounting of where every published message ended up."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from local import shapes
from local.event_source import BatchResult
from local.sqs_server import s3_client
from operations.dlq import peek
from operations.letters import DeadLetter
from publisher.client import EventPublisher
from sqs_consumer.kinds import QuarantineKind
from sqs_consumer.registry import UNREGISTERED_TYPE

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

T = TypeVar("T")

# Final states, and what each demo message is expected to reach.
SUCCEEDED = "succeeded"
QUARANTINED = "quarantined"
RETRIES_EXHAUSTED = "quarantined after retries"
NEVER_STARTED = "quarantined, never started"
# In the DLQ with no reason: SQS's redrive moved it (a crash or a timeout on its last receive).
NO_REASON = "dead-lettered without a reason"
IN_FLIGHT = "still in flight"
# A redriven message that was also deleted after success: must never happen.
INCONSISTENT = "inconsistent"


@dataclass(frozen=True)
class DemoMessage:
    label: str
    body: str | dict[str, Any]  # a dict is published through the validating publisher
    expected: str
    # Message attributes of a body sent as it is (an offloaded payload's size).
    attributes: dict[str, Any] | None = None


def _event(event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": f"evt_{uuid.uuid4().hex[:12]}",
        "event_type": event_type,
        "occurred_at": "2026-11-27T10:00:00Z",
        "payload": payload,
    }


# An offloaded event's payload: larger than the largest SQS message, so a producer must offload it.
OFFLOADED_TEXT_BYTES = 1_100_000


def upstream_shapes(offload: Callable[[str], tuple[str, dict[str, Any]]]) -> list[DemoMessage]:
    """One event in each shape upstream services deliver (local/shapes.py), each expected to succeed."""
    large = _event("document.processed", {"document_id": "doc-large", "text": "x" * OFFLOADED_TEXT_BYTES})
    pointer, attributes = offload(json.dumps(large))
    return [
        DemoMessage("SNS notification", shapes.wrap(shapes.SNS, _event("hello", {"name": "via-sns"})), SUCCEEDED),
        DemoMessage("EventBridge (detail an event)",
                    shapes.wrap(shapes.EVENTBRIDGE_DETAIL, _event("hello", {"name": "via-eventbridge"})), SUCCEEDED),
        DemoMessage("EventBridge (routed by detail-type)", shapes.wrap(
            shapes.EVENTBRIDGE_PLAIN, _event("document.processed", {"document_id": "doc-routed"})), SUCCEEDED),
        DemoMessage("offloaded to S3 (1.1 MB)", pointer, SUCCEEDED, attributes),
    ]  # fmt: skip


def offloader(endpoint_url: str, bucket: str | None) -> Callable[[str], tuple[str, dict[str, Any]]] | None:
    """Offloads a body to ``bucket`` in moto's S3, as an extended client does (None without a bucket)."""
    if bucket is None:
        return None
    s3 = s3_client(endpoint_url)
    return lambda body: shapes.offload(s3, bucket, body)


def demo_mix(offload: Callable[[str], tuple[str, dict[str, Any]]] | None = None) -> list[DemoMessage]:
    """Successes, a slow one, a flaky one, one failing on every receive, four kinds of poison and, given
    where to offload a payload, one event in each upstream shape."""
    return [
        *(upstream_shapes(offload) if offload is not None else []),
        *(DemoMessage("hello", _event("hello", {"name": f"user-{i}"}), SUCCEEDED) for i in range(4)),
        *(
            DemoMessage("document.processed", _event("document.processed", {"document_id": f"doc-{i}"}), SUCCEEDED)
            for i in range(2)
        ),
        DemoMessage("hello slow", _event("hello", {"name": "slow", "simulate": "slow", "delay_ms": 300}), SUCCEEDED),
        DemoMessage("hello flaky", _event("hello", {"name": "flaky", "simulate": "flaky"}), SUCCEEDED),
        DemoMessage("hello fail", _event("hello", {"name": "doomed", "simulate": "fail"}), RETRIES_EXHAUSTED),
        DemoMessage("malformed JSON", '{"event_id": "evt_broken", "event_type": "hello", ', QUARANTINED),
        DemoMessage("unknown event_type", _event(UNREGISTERED_TYPE, {"invoice_id": "inv-1"}), QUARANTINED),
        DemoMessage("invalid payload", _event("document.processed", {"document_id": ""}), QUARANTINED),
        DemoMessage("missing event_id", {"event_type": "hello", "payload": {"name": "x"}}, QUARANTINED),
    ]


def send(
    client: SQSClient,
    queue_url: str,
    items: Sequence[T],
    *,
    body: Callable[[T], str],
    raw: Callable[[T], bool],
    attributes: Callable[[T], dict[str, Any] | None] = lambda _: None,
    group_id: str | None = None,
) -> dict[str, T]:
    """Send valid events through the validating publisher, and the rest as they are (poison, as a
    careless producer would; other shapes, as SNS, EventBridge or an extended client would), with
    their ``attributes``; returns message id -> item. Raises if SQS refuses any of them."""
    published: dict[str, T] = {}
    valid = [item for item in items if not raw(item)]
    results = EventPublisher(queue_url, client).publish([json.loads(body(item)) for item in valid], group_id=group_id)
    for item, result in zip(valid, results, strict=True):
        if result.message_id is None:
            raise RuntimeError(f"could not publish {body(item)[:80]}: {result.error}")
        published[result.message_id] = item
    as_they_are = [item for item in items if raw(item)]
    for start in range(0, len(as_they_are), 10):
        chunk = as_they_are[start : start + 10]
        entries: list[SendMessageBatchRequestEntryTypeDef] = []
        for index, item in enumerate(chunk):
            entry: SendMessageBatchRequestEntryTypeDef = {"Id": str(index), "MessageBody": body(item)}
            extra = attributes(item)
            if extra:
                entry["MessageAttributes"] = extra
            if group_id:
                entry["MessageGroupId"] = group_id
                entry["MessageDeduplicationId"] = uuid.uuid4().hex
            entries.append(entry)
        response = client.send_message_batch(QueueUrl=queue_url, Entries=entries)
        if response.get("Failed"):
            raise RuntimeError(f"SQS refused messages sent as they are: {response['Failed']}")
        for sent in response["Successful"]:
            published[sent["MessageId"]] = chunk[int(sent["Id"])]
    return published


def publish(
    client: SQSClient, queue_url: str, messages: list[DemoMessage], group_id: str | None
) -> dict[str, DemoMessage]:
    """Send the demo mix; returns message id -> demo message."""
    return send(
        client,
        queue_url,
        messages,
        body=lambda m: m.body if isinstance(m.body, str) else json.dumps(m.body),
        raw=lambda m: m.expected == QUARANTINED or isinstance(m.body, str),
        attributes=lambda m: m.attributes,
        group_id=group_id,
    )


def dead_letters(client: SQSClient, queue_url: str) -> dict[str, DeadLetter]:
    """The DLQ's messages by the id they had on the source queue, left in place.

    moto is a single server, so a short poll sees every visible message (SQS needs a long poll).
    """
    return {letter.source_message_id: letter for letter in peek(client, queue_url, wait_seconds=0)}


@dataclass
class Ledger:
    """What the emulated mapping did to each message (fed by its batch callback)."""

    deleted: set[str] = field(default_factory=set)
    failures: Counter[str] = field(default_factory=Counter)
    invocations: Counter[str] = field(default_factory=Counter)
    # When each message was listed (monotonic seconds), to check the retry backoff.
    failure_times: dict[str, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def deleted_so_far(self) -> set[str]:
        with self._lock:
            return set(self.deleted)

    def on_batch(self, result: BatchResult) -> None:
        with self._lock:
            self.deleted.update(result.deleted)
            self.failures.update(result.failed)
            now = time.monotonic()
            for message_id in result.failed:
                self.failure_times.setdefault(message_id, []).append(now)
            self.invocations[result.reason] += 1


_QUARANTINE_STATES: dict[str, str] = {
    QuarantineKind.RETRIES_EXHAUSTED: RETRIES_EXHAUSTED,
    QuarantineKind.NOT_STARTED: NEVER_STARTED,
}


def observe(
    client: SQSClient, dlq_url: str, published: Iterable[str], ledger: Ledger
) -> tuple[dict[str, str], dict[str, DeadLetter]]:
    """The state of each published message, and the DLQ's messages.

    The deletions are read before the DLQ: a record is sent to the DLQ before the mapping deletes
    it, so every deletion read here has its DLQ copy (if any) in what the DLQ read then returns.
    Read the other way round, a message quarantined in between would look deleted after success.
    """
    deleted = ledger.deleted_so_far()
    dead = dead_letters(client, dlq_url)
    return final_states(published, deleted, dead), dead


def final_states(published: Iterable[str], deleted: set[str], dead: dict[str, DeadLetter]) -> dict[str, str]:
    """Where each published message (by id) is: exactly one state each."""
    states = {}
    for message_id in published:
        letter = dead.get(message_id)
        if letter is not None and letter.quarantined:
            states[message_id] = _QUARANTINE_STATES.get(letter.kind or "", QUARANTINED)
        elif letter is not None:
            states[message_id] = INCONSISTENT if message_id in deleted else NO_REASON
        elif message_id in deleted:
            states[message_id] = SUCCEEDED
        else:
            states[message_id] = IN_FLIGHT
    return states
