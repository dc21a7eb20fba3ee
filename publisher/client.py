"""Validated events to the queue: batched within SQS's limits, sent concurrently, large ones offloaded to S3.

Each event is parsed by the consumer's own models first, so a bad event fails here instead of in the
DLQ. An event whose message is above the queue's ``MaximumMessageSize`` is stored in the payload
bucket and sent as the extended clients' pointer (publisher.offload). Requests go out from a thread
pool with a bounded window of the input in memory (publisher.dispatch); the entries SQS fails are sent
again with backoff (publisher.sender). One result per event, in input order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from publisher.batching import MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, Entry
from publisher.dispatch import DEFAULT_CONCURRENCY, Dispatcher, Window
from publisher.offload import PayloadStore, S3Writer
from publisher.sender import BatchSender, PublishResult, RetryPolicy, is_permanent
from publisher.versioning import VersionedEvents
from sqs_consumer.errors import PoisonMessageError
from sqs_consumer.models import trace
from sqs_consumer.models.base import BaseEvent
from sqs_consumer.registry import EventRegistry
from sqs_consumer.routes import REGISTRY

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

__all__ = [
    "MAX_BATCH_BYTES", "MAX_BATCH_ENTRIES", "EventPublisher", "GroupId", "PublishResult", "is_permanent",
    "tenant_group",
]  # fmt: skip

EVENT_TYPE_ATTRIBUTE = "event_type"
# Where each message's trace header comes from: a call per event, one header for all, or none.
TraceHeaderSource = Callable[[], str] | str | None
# A message group (FIFO: the ordering group; standard: the tenant of a fair queue): one for every event, or
# one chosen per event from the validated event.
GroupId = str | Callable[[BaseEvent], str] | None


def client_config(concurrency: int = DEFAULT_CONCURRENCY) -> Config:
    """The botocore configuration of the publisher's clients: a pooled connection per request in flight,
    the standard retry mode (throttling and 5xx retried with backoff, for SQS and for S3's PUTs), and no
    client-side parameter validation: the publisher builds each request within SQS's limits, and that
    validation cost more CPU per request than the rest of the client (docs/decisions/048-publisher-at-scale.md)."""
    return Config(
        retries={"mode": "standard", "max_attempts": 5},
        max_pool_connections=concurrency,
        parameter_validation=False,
    )


class EventPublisher:
    def __init__(
        self,
        queue_url: str,
        client: SQSClient,
        *,
        registry: EventRegistry = REGISTRY,
        max_attempts: int = 5,
        base_delay: float = 0.1,
        max_delay: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        max_message_bytes: int | None = None,
        payload_bucket: str | None = None,
        s3: S3Writer | None = None,
        window: Window | None = None,
        event_version: int | None = None,
        trace_header: TraceHeaderSource = trace.for_message,
    ) -> None:
        """``max_message_bytes``: the queue's MaximumMessageSize; read from the queue when not given
        (SQS's largest, 1 MiB, when the caller may not read the queue's attributes).
        ``payload_bucket``: where events above it go (written with ``s3``, by default a client in
        botocore's standard retry mode); without it such an event is refused.
        ``window``: requests in flight together and the input held in memory. The clients' connection
        pools (``max_pool_connections``) should be at least its concurrency: see ``client_config``.
        ``trace_header``: the X-Ray trace header of each message (its ``AWSTraceHeader``), called once per
        event: by default the producer's current trace (``_X_AMZN_TRACE_ID``) when it runs in one, else a
        new trace per event; a fixed header, or None for none.
        ``event_version``: the version of their type every event is sent as (publisher/versioning.py);
        None, each type's current one.

        A message group id (``group_id``) is each message's ``MessageGroupId``: on a FIFO queue its
        ordering group, on a standard queue its tenant, which a fair queue keeps from delaying other tenants."""
        self._queue_url = queue_url
        self._client = client
        self._registry = registry
        self._versions = VersionedEvents(registry, event_version)
        self._fifo = queue_url.endswith(".fifo")
        self._max_message_bytes = max_message_bytes
        self._window = window or Window(DEFAULT_CONCURRENCY)
        if isinstance(trace_header, str) and trace.TraceHeader.parse(trace_header) is None:
            raise ValueError(f"not an X-Ray trace header (Root=1-<8 hex>-<24 hex>;Parent=<16 hex>): {trace_header!r}")
        self._trace_header = trace_header
        self._payloads: PayloadStore | None = None
        if payload_bucket:
            writer: S3Writer = s3 or boto3.client("s3", config=client_config(self._window.concurrency))
            self._payloads = PayloadStore(payload_bucket, writer)
        retry = RetryPolicy(max_attempts, base_delay, max_delay)
        self._sender = BatchSender(queue_url, client, retry=retry, payloads=self._payloads, sleep=sleep)
        self.peak_in_flight = 0

    def publish(self, events: Iterable[Mapping[str, Any] | str], *, group_id: GroupId = None) -> list[PublishResult]:
        """Validate and send; one result per event, in order."""
        return list(self.stream(events, group_id=group_id))

    def stream(self, events: Iterable[Mapping[str, Any] | str], *, group_id: GroupId = None) -> Iterator[PublishResult]:
        """As ``publish``, yielding each result as soon as it and those before it are known; reads
        ``events`` (objects, or JSON texts) only as the window allows. Raises, before reading any,
        when the queue's first request shows that none can succeed: the queue does not exist, or no
        credentials, region or endpoint to reach it."""
        if self._fifo and not group_id:
            raise ValueError("a FIFO queue needs a message group id")
        limit = self._queue_max_bytes()
        dispatcher = Dispatcher(
            lambda index, document: self._prepare(index, document, group_id, limit),
            self._sender.send,
            self._window,
            ordered_groups=self._fifo,
            max_batch_bytes=limit,
        )
        try:
            yield from dispatcher.run(events)
        finally:
            self.peak_in_flight = max(self.peak_in_flight, dispatcher.peak_in_flight)

    def _prepare(self, index: int, document: object, group_id: GroupId, limit: int) -> Entry | PublishResult:
        """The event as an entry to send, or the result that says why it will not be sent."""
        try:
            body, event = self._versions.prepare(document)
        except PoisonMessageError as error:
            return PublishResult(_event_id_of(document), error=f"{error.kind}: {error}")
        try:
            group = group_id(event) if callable(group_id) else group_id
        except Exception as error:
            return PublishResult(event.event_id, error=f"no message group id: {type(error).__name__}: {error}")
        if self._fifo and not group:
            return PublishResult(event.event_id, error="no message group id: a FIFO queue needs one")
        attribute = {EVENT_TYPE_ATTRIBUTE: {"DataType": "String", "StringValue": event.event_type}}
        entry = Entry(index, event.event_id, body, attribute, group, trace_header=self._trace())
        if entry.size <= limit:
            return entry
        if self._payloads is None:
            refused = f"message is larger than the queue's maximum of {limit} bytes; offload it with a payload bucket"
            return PublishResult(event.event_id, error=refused)
        return self._payloads.offload(entry)

    def _trace(self) -> str | None:
        header = self._trace_header
        return header() if callable(header) else header

    def _queue_max_bytes(self) -> int:
        if self._max_message_bytes is None:
            try:
                attributes = self._client.get_queue_attributes(
                    QueueUrl=self._queue_url, AttributeNames=["MaximumMessageSize"]
                ).get("Attributes", {})
                self._max_message_bytes = int(attributes.get("MaximumMessageSize", MAX_BATCH_BYTES))
            except Exception as error:
                if _no_request_can_succeed(error):
                    raise
                # No permission to read it (a producer may only send), or a stand-in without it: SQS's own limit.
                self._max_message_bytes = MAX_BATCH_BYTES
        return self._max_message_bytes


def _event_id_of(document: object) -> str | None:
    """The event_id of an event that failed validation, when it has one (a JSON text is read again)."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return None
    event_id = document.get("event_id") if isinstance(document, Mapping) else None
    return str(event_id) if event_id not in (None, "") else None


# Errors of the queue's first request that every later one would meet: the run stops before reading
# its input. (AccessDenied is not one: a producer may be allowed to send and not to read attributes.)
_QUEUE_MISSING = ("QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue")
_CALLER_ERRORS = ("NoCredentialsError", "PartialCredentialsError", "NoRegionError", "EndpointConnectionError")


def _no_request_can_succeed(error: Exception) -> bool:
    response = getattr(error, "response", None)
    code = str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
    return code in _QUEUE_MISSING or type(error).__name__ in _CALLER_ERRORS


def field_group(path: str) -> Callable[[BaseEvent], str]:
    """A group id read from a field of the validated event, e.g. ``payload.tenant_id``."""
    names = path.split(".")

    def group(event: BaseEvent) -> str:
        value: Any = event.model_dump(mode="json")
        for name in names:
            if not isinstance(value, Mapping) or name not in value:
                raise KeyError(f"the event has no field {path}")
            value = value[name]
        if value is None or value == "" or isinstance(value, Mapping | list):
            raise ValueError(f"field {path} is not a scalar value: {value!r}")
        return str(value)

    return group


def tenant_group(path: str) -> Callable[[BaseEvent], str]:
    """Each event's tenant as its message group id, from the field ``path``: a path from the event
    (``payload.tenant_id``), or a name in its payload (``tenant_id``). On a standard queue SQS then keeps
    one tenant's backlog from delaying the others' (fair queues); on a FIFO queue it is the ordering group."""
    top = path.split(".", 1)[0]
    return field_group(path if top in BaseEvent.model_fields or top == "payload" else f"payload.{path}")
