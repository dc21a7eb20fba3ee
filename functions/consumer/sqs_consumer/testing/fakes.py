"""In-memory stand-ins for the function's adapters: the DLQ, the idempotency store, S3, a Lambda
context and a clock, the event source mapping, the probe scheduler and the queue records are sent again to
(the breakers' store has its twin beside it, dependencies/store.py). Each keeps what it was asked, for
a test to assert on."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqs_consumer.budget import Deadline
from sqs_consumer.dependencies.control import MappingView
from sqs_consumer.errors import FollowUpError, QuarantineFailedError
from sqs_consumer.idempotency.fingerprint import fingerprint, same_event
from sqs_consumer.idempotency.port import Claim, ClaimState, EventInProgressError, Held
from sqs_consumer.models.base import BaseEvent
from sqs_consumer.models.followups import FollowUp
from sqs_consumer.quarantine import QuarantinedMessage
from sqs_consumer.resend import ResentMessage


@dataclass
class FakeClock:
    """Time as the test sets it, in seconds: the consumer's timer and a context's countdown read it."""

    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeContext:
    """A Lambda context with ``remaining_ms`` left; counting down as ``clock`` advances, if given."""

    remaining_ms: int = 30_000
    clock: FakeClock | None = None
    function_name: str = "consumer"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:consumer"
    aws_request_id: str = "req-1"
    _deadline_ms: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        start = self.clock.now if self.clock is not None else 0.0
        self._deadline_ms = start * 1000 + self.remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        if self.clock is None:
            return self.remaining_ms
        return int(self._deadline_ms - self.clock.now * 1000)


@dataclass
class InMemoryDLQ:
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


@dataclass
class InMemoryIdempotency:
    """An in-memory idempotency store with the semantics of the DynamoDB one.

    ``claim``: a new event is acquired (in progress); a completed one is a duplicate; one in
    progress is reported with the seconds left; a stored event of the same id with another
    type or payload is reused. ``settle`` completes and releases.
    """

    records: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # id -> (status, fingerprint, token)
    # The version of the event type each record's fingerprint is of, as the DynamoDB store keeps it.
    versions: dict[str, int] = field(default_factory=dict)
    # Follow-ups stored with a completion and not marked sent, by event_id.
    followups: dict[str, tuple[FollowUp, ...]] = field(default_factory=dict)
    # How many settle calls (store writes) were made.
    writes: int = 0
    in_progress_left_s: int = 30
    claims: list[list[str]] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    _tokens: int = 0

    def claim(self, events: Sequence[BaseEvent], remaining_ms: int, deadline: Deadline) -> list[Claim]:
        self.claims.append([event.event_id for event in events])
        claims = []
        for event in events:
            stored = self.records.get(event.event_id)
            if stored is None:
                self._tokens += 1
                self.records[event.event_id] = ("INPROGRESS", fingerprint(event), self._tokens)
                self.versions[event.event_id] = event.event_version
                claims.append(Claim(ClaimState.ACQUIRED, token=self._tokens))
                continue
            if stored[0] == "COMPLETED":
                same = Claim(ClaimState.DUPLICATE, pending=self.followups.get(event.event_id, ()))
            else:
                error = EventInProgressError("in progress elsewhere", retry_after_seconds=self.in_progress_left_s)
                same = Claim(ClaimState.IN_PROGRESS, error)
            version = self.versions.get(event.event_id, 1)
            if not same_event(stored[1], event, version):
                claims.append(
                    Claim(ClaimState.REUSED, stored_fingerprint=stored[1], stored=same, stored_version=version)
                )
            else:
                claims.append(same)
        return claims

    def settle(
        self,
        succeeded: Sequence[BaseEvent],
        released: Sequence[Held],
        deadline: Deadline,
        followups: Mapping[str, Sequence[FollowUp]] | None = None,
    ) -> int:
        if deadline.passed:  # as the DynamoDB store: nothing is attempted past the deadline
            return len(succeeded)
        self.writes += 1
        for event in succeeded:
            self.records[event.event_id] = ("COMPLETED", fingerprint(event), 0)
            self.versions[event.event_id] = event.event_version
            self.completed.append(event.event_id)
            # The completion is written whole: with the follow-ups given, or none.
            kept = tuple((followups or {}).get(event.event_id, ()))
            if kept:
                self.followups[event.event_id] = kept
            else:
                self.followups.pop(event.event_id, None)
        for held in released:
            stored = self.records.get(held.event.event_id)
            # Only this claim's own in-progress record, as the DynamoDB store's conditional delete.
            if stored is not None and stored[0] == "INPROGRESS" and stored[2] == held.token:
                del self.records[held.event.event_id]
            self.released.append(held.event.event_id)
        return 0


@dataclass
class InMemorySender:
    """The follow-up destinations' queues in memory: ``sent`` holds every follow-up accepted, in order, as
    ``(destination, event)``; ``fail`` refuses every send (or those to the destinations it names)."""

    queue_urls: dict[str, str] = field(default_factory=dict)
    fail: bool | set[str] = False
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    calls: int = 0

    @classmethod
    def to(cls, *destinations: str) -> InMemorySender:
        """A sender to each named destination (its URL made up)."""
        return cls({name: f"https://sqs.us-east-1.amazonaws.com/123456789012/{name}" for name in destinations})

    def send(self, followups: Sequence[FollowUp], deadline: Deadline) -> list[Exception | None]:
        self.calls += 1
        results: list[Exception | None] = []
        for followup in followups:
            refused = self.fail is True or (isinstance(self.fail, set) and followup.to in self.fail)
            if refused or followup.to not in self.queue_urls:
                results.append(FollowUpError(f"{followup.to} refused the follow-up"))
                continue
            self.sent.append((followup.to, json.loads(followup.body)))
            results.append(None)
        return results

    def events(self, destination: str) -> list[dict[str, Any]]:
        """The events sent to ``destination``, in order."""
        return [event for to, event in self.sent if to == destination]


@dataclass
class InMemoryS3:
    """Offloaded payloads by bucket and key, read as the function's S3 client reads them: ``get_object``
    with the object's ``ContentLength`` and a streaming ``Body``; a missing object is S3's ``NoSuchKey``."""

    objects: dict[tuple[str, str], bytes] = field(default_factory=dict)
    reads: list[tuple[str, str]] = field(default_factory=list)

    def put(self, bucket: str, key: str, data: bytes | str) -> None:
        self.objects[(bucket, key)] = data.encode() if isinstance(data, str) else data

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        from botocore.exceptions import ClientError  # noqa: PLC0415 - as the function: botocore on first use

        self.reads.append((Bucket, Key))
        data = self.objects.get((Bucket, Key))
        if data is None:
            error = {"Error": {"Code": "NoSuchKey", "Message": "The specified key does not exist."},
                     "ResponseMetadata": {"HTTPStatusCode": 404}}  # fmt: skip
            raise ClientError(error, "GetObject")  # type: ignore[arg-type]
        return {"Body": io.BytesIO(data), "ContentLength": len(data)}


@dataclass
class FakeMapping:
    """An event source mapping as ``UpdateEventSourceMapping`` leaves it; keeps every change asked."""

    enabled: bool = True
    max_concurrency: int | None = 10
    changes: list[tuple[str, bool, int | None]] = field(default_factory=list)

    def pause(self, queue_arn: str) -> None:
        self.enabled = False
        self.changes.append((queue_arn, False, self.max_concurrency))

    def resume(self, queue_arn: str, max_concurrency: int | None) -> None:
        self.enabled = True
        if max_concurrency is not None:
            self.max_concurrency = max_concurrency
        self.changes.append((queue_arn, True, self.max_concurrency))

    def describe(self, queue_arn: str) -> MappingView:
        return MappingView("fake-uuid", "Enabled" if self.enabled else "Disabled", self.enabled, self.max_concurrency)


@dataclass
class RecordingProbes:
    """A probe scheduler that keeps each schedule: (dependency, step, at, queue ARN)."""

    scheduled: list[tuple[str, str, float, str]] = field(default_factory=list)

    targets: list[str] = field(default_factory=list)

    def schedule(self, dependency: str, step: str, at: float, queue_arn: str, target_arn: str) -> None:
        self.scheduled.append((dependency, step, at, queue_arn))
        self.targets.append(target_arn)


@dataclass
class InMemoryResender:
    """Keeps the records sent again to their queue; refuses them while ``fail`` is set."""

    fail: bool = False
    sent: list[ResentMessage] = field(default_factory=list)

    def send_batch(self, messages: Sequence[ResentMessage], deadline: Deadline) -> list[Exception | None]:
        if self.fail:
            return [RuntimeError("queue unavailable") for _ in messages]
        self.sent.extend(messages)
        return [None for _ in messages]
