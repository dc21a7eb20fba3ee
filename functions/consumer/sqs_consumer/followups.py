"""Follow-up events, sent exactly once: the transactional outbox in the group commit (docs/design.md §4).

A handler emits a follow-up through its record (``record.emit(event, to="billing")``). The events are
held in memory while the handler runs: one that raises emits nothing. When it returns, they are
stored with its completion, in the same idempotency write (pipeline/commit.py), then sent, and the
stored copy is marked sent in a later write. A crash between the write and the send leaves them in the
store: the next delivery of the record is acknowledged as a duplicate and sends what is left. Each
follow-up's ``event_id`` is derived from its parent's and its position among the parent's follow-ups
(uuid5), so a send repeated after a crash is a duplicate for the consumer downstream.

``to`` names a destination declared in the stage's settings (``followup_destinations``); the function
knows their queue URLs (``FOLLOWUP_QUEUES``) and may send to those queues only.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from sqs_consumer.budget import Deadline, run_parallel
from sqs_consumer.clients import sqs_client
from sqs_consumer.errors import FollowUpError, FollowUpTooLargeError, describe
from sqs_consumer.models.base import BaseEvent
from sqs_consumer.models.followups import FollowUp, dump_followups
from sqs_consumer.models.trace import TRACE_HEADER_ATTRIBUTE, trace_attribute
from sqs_consumer.sqs_limits import DEFAULT_MAX_MESSAGE_BYTES, deduplication_id, utf8_size

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

# The namespace of follow-up ids: uuid5(namespace, "<parent event_id>/<position>"). Fixed forever: a
# changed namespace would give a follow-up re-sent after a deploy another id.
FOLLOWUP_NAMESPACE = uuid.UUID("6f1c3b52-8d0e-5a57-9c1e-2f4b7d9a0e31")
# A follow-up is one SQS message: within a queue's default MaximumMessageSize.
MAX_FOLLOWUP_BYTES = DEFAULT_MAX_MESSAGE_BYTES
# A record's follow-ups are stored in its idempotency item, which DynamoDB caps at 400 KB: the item's
# other attributes take under 1 KB, the rest is kept as margin.
MAX_STORED_FOLLOWUPS_BYTES = 350_000
SEND_BATCH_ENTRIES = 10


def followup_event_id(parent_event_id: str, position: int) -> str:
    """The id of the ``position``-th follow-up (from 0) of the event ``parent_event_id``: the same on every run."""
    return str(uuid.uuid5(FOLLOWUP_NAMESPACE, f"{parent_event_id}/{position}"))


class Outbox:
    """The follow-ups one record's handler emitted, and whether they were sent."""

    __slots__ = ("_bytes", "_destinations", "_record", "error", "event", "followups", "parent", "sent")

    def __init__(
        self, event: BaseEvent, destinations: Mapping[str, str], record: Mapping[str, Any] | None = None
    ) -> None:
        self.event = event
        self.parent = event.event_id
        # The parent record as Lambda delivered it: its trace header is read only once it emits.
        self._record = record
        self._destinations = destinations
        self.followups: list[FollowUp] = []
        self._bytes = 2
        # Set once every follow-up was accepted by its queue; else the error of one that was not.
        self.sent = False
        self.error: Exception | None = None

    @classmethod
    def stored(cls, event: BaseEvent, followups: Sequence[FollowUp], record: Mapping[str, Any] | None = None) -> Outbox:
        """What a duplicate's stored record still holds to send (in the trace of the record delivered again)."""
        outbox = cls(event, {}, record)
        header = outbox.trace_header
        outbox.followups = [replace(f, trace_header=header) for f in followups]
        return outbox

    @property
    def trace_header(self) -> str | None:
        """The parent record's AWSTraceHeader: its follow-ups go in the same trace."""
        attributes = self._record.get("attributes") if self._record is not None else None
        header = attributes.get(TRACE_HEADER_ATTRIBUTE) if isinstance(attributes, Mapping) else None
        return header if isinstance(header, str) else None

    def add(self, event: BaseEvent | Mapping[str, Any], to: str) -> str:
        """Hold ``event`` for ``to``; its derived event_id. Raises ``FollowUpError`` (undeclared destination)
        or ``FollowUpTooLargeError`` (over SQS's message size, or all of them over the store's item size)."""
        if to not in self._destinations:
            declared = ", ".join(sorted(self._destinations)) or "none"
            raise FollowUpError(
                f"follow-up destination {to!r} is not declared for this consumer (declared: {declared}): add it to "
                "the stage's followup_destinations"
            )
        event_id = followup_event_id(self.parent, len(self.followups))
        followup = FollowUp(to, event_id, _body(event, event_id), self.parent, self.trace_header)
        size = utf8_size(followup.body)
        if size > MAX_FOLLOWUP_BYTES:
            raise FollowUpTooLargeError(
                f"follow-up {len(self.followups)} to {to!r} is {size:,} bytes: an SQS message holds "
                f"{MAX_FOLLOWUP_BYTES:,} (offload its payload and send a reference)"
            )
        stored = utf8_size(dump_followups([followup])) - 1  # its entry and a comma
        if self._bytes + stored > MAX_STORED_FOLLOWUPS_BYTES:
            raise FollowUpTooLargeError(
                f"the follow-ups of event {self.parent!r} would take {self._bytes + stored:,} bytes: the idempotency "
                f"record that keeps them until they are sent holds {MAX_STORED_FOLLOWUPS_BYTES:,} (DynamoDB's item "
                "limit is 400 KB): emit fewer or smaller events"
            )
        self._bytes += stored
        self.followups.append(followup)
        return event_id


def _body(event: BaseEvent | Mapping[str, Any], event_id: str) -> str:
    """The follow-up as JSON, its event_id the derived one (whatever the caller put there)."""
    if isinstance(event, BaseEvent):
        document = event.model_dump(mode="json")
    elif isinstance(event, Mapping):
        document = dict(event)
        if not isinstance(document.get("event_type"), str) or not isinstance(document.get("payload"), Mapping):
            raise FollowUpError("a follow-up needs an event_type (a string) and a payload (an object)")
    else:
        raise FollowUpError(f"a follow-up is an event model or a mapping, not {type(event).__name__}")
    document.pop("event_id", None)
    try:
        return json.dumps({"event_id": event_id, **document}, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise FollowUpError(f"the follow-up is not JSON: {describe(exc)}") from None


class FollowUpSender(Protocol):
    """Where follow-ups go: ``queue_urls`` by destination name (those handlers may emit to)."""

    @property
    def queue_urls(self) -> Mapping[str, str]: ...

    def send(self, followups: Sequence[FollowUp], deadline: Deadline) -> list[Exception | None]:
        """Send each follow-up to its destination's queue: ``None`` where accepted, the error where not."""


class SqsFollowUpSender:
    """``SendMessageBatch`` to each destination's queue, 10 entries and 256 KiB to a request, requests in
    parallel. To a FIFO queue: the parent's event_id is the message group (its follow-ups stay in order)
    and the follow-up's id the deduplication id, so SQS itself drops a re-send within 5 minutes."""

    def __init__(
        self,
        queue_urls: Mapping[str, str],
        *,
        endpoint_url: str | None = None,
        client_factory: Callable[[str | None], SQSClient] | None = None,
    ) -> None:
        self.queue_urls = dict(queue_urls)
        self._endpoint_url = endpoint_url
        self._client_factory = client_factory
        self._client: SQSClient | None = None

    def send(self, followups: Sequence[FollowUp], deadline: Deadline) -> list[Exception | None]:
        results: list[Exception | None] = [None] * len(followups)
        requests: dict[str, list[list[tuple[int, SendMessageBatchRequestEntryTypeDef]]]] = {}
        sizes: dict[str, int] = {}
        for index, followup in enumerate(followups):
            url = self.queue_urls.get(followup.to)
            if url is None:
                results[index] = FollowUpError(f"follow-up destination {followup.to!r} is no longer declared")
                continue
            entry: SendMessageBatchRequestEntryTypeDef = {"Id": str(index), "MessageBody": followup.body}
            if followup.trace_header:  # the parent's trace: X-Ray and the logs link the follow-up to it
                entry["MessageSystemAttributes"] = trace_attribute(followup.trace_header)  # type: ignore[typeddict-item]
            if url.endswith(".fifo"):
                entry["MessageGroupId"] = deduplication_id(followup.parent)
                entry["MessageDeduplicationId"] = deduplication_id(followup.event_id)
            size = utf8_size(followup.body)
            batches = requests.setdefault(url, [])
            if not batches or len(batches[-1]) == SEND_BATCH_ENTRIES or sizes[url] + size > MAX_FOLLOWUP_BYTES:
                batches.append([])
                sizes[url] = 0
            batches[-1].append((index, entry))
            sizes[url] += size
        calls = [(url, request) for url, batches in requests.items() for request in batches]
        if not calls:
            return results
        try:
            client = self._sqs()
        except Exception as exc:  # no client, no send: the records are retried
            return [FollowUpError(f"SQS client unavailable: {describe(exc)}") if r is None else r for r in results]
        outcomes = run_parallel([_sender(client, url, request) for url, request in calls], deadline)
        for (_url, request), outcome in zip(calls, outcomes, strict=True):
            for index, _entry in request:
                if isinstance(outcome, BaseException):
                    results[index] = FollowUpError(f"follow-up not sent: {describe(outcome)}")
                else:
                    results[index] = outcome.get(index)
        return results

    def _sqs(self) -> SQSClient:
        if self._client is None:
            factory = self._client_factory or sqs_client  # the clients module's, found when first needed
            self._client = factory(self._endpoint_url)
        return self._client


def _sender(
    client: SQSClient, url: str, request: list[tuple[int, SendMessageBatchRequestEntryTypeDef]]
) -> Callable[[], dict[int, Exception | None]]:
    def send() -> dict[int, Exception | None]:
        response = client.send_message_batch(QueueUrl=url, Entries=[entry for _, entry in request])
        outcome: dict[int, Exception | None] = {int(ok["Id"]): None for ok in response.get("Successful", [])}
        for failed in response.get("Failed", []):
            outcome[int(failed["Id"])] = FollowUpError(
                f"the queue did not accept the follow-up: {failed.get('Code')}: {failed.get('Message', '')}"
            )
        for index, _ in request:
            outcome.setdefault(index, FollowUpError("the queue gave no answer for this follow-up"))
        return outcome

    return send
