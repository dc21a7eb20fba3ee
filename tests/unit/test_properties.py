"""Property-based tests: whatever the batch, the response contract holds and nothing is lost."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqs_consumer.errors import NonRetryableError, PoisonMessageError, RetryableError
from sqs_consumer.models import DocumentProcessedEvent, HelloEvent
from sqs_consumer.models.record import RecordInfo
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.registry import EventRegistry, Route
from sqs_consumer.testing import events as sqs
from sqs_consumer.testing.fakes import FakeContext, InMemoryDLQ
from tests.conftest import failed_ids

OUTCOMES = ("ok", "retryable", "non_retryable", "async_ok", "async_retryable", "crash")


def outcome_of(name: str) -> Any:
    """A handler outcome chosen by the test through the hello payload's name."""
    if name == "retryable":
        raise RetryableError("transient")
    if name == "non_retryable":
        raise NonRetryableError("permanent")
    if name == "crash":
        raise KeyError("bug in a handler")
    if name.startswith("async_"):

        async def later() -> None:
            await asyncio.sleep(0)
            if name == "async_retryable":
                raise RetryableError("transient, async")

        return later()
    return None


def hello(event: HelloEvent, record: RecordInfo) -> Any:
    return outcome_of(event.payload.name)


def document(event: DocumentProcessedEvent, record: RecordInfo) -> None:
    return None


REGISTRY = EventRegistry([Route(HelloEvent, hello), Route(DocumentProcessedEvent, document)])

valid_bodies = st.builds(
    lambda outcome, event_id: sqs.body("hello", {"name": outcome}, event_id=event_id),
    st.sampled_from(OUTCOMES),
    st.text(min_size=1, max_size=20),
)
poison_bodies = st.one_of(
    st.text(max_size=60).filter(lambda t: t.strip() != ""),
    st.builds(
        json.dumps,
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
            max_leaves=8,
        ),
    ),
    st.builds(lambda t: sqs.body(t, {}), st.text(min_size=1, max_size=15).filter(lambda t: t not in REGISTRY)),
    st.just(sqs.body("document.processed", {"document_id": ""})),
)
records = st.lists(
    st.tuples(st.one_of(valid_bodies, poison_bodies), st.integers(min_value=1, max_value=6), st.sampled_from("abc")),
    min_size=1,
    max_size=25,
)


def is_poison(body: str) -> bool:
    try:
        REGISTRY.parse(body)
    except PoisonMessageError:
        return True
    return False


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=records, fifo=st.booleans(), dlq_down=st.booleans(), concurrency=st.integers(min_value=1, max_value=8))
def test_every_message_is_deleted_or_listed_exactly_once(
    batch: list[tuple[str, int, str]], fifo: bool, dlq_down: bool, concurrency: int
):
    # GIVEN any batch: valid and poison bodies, any receive counts, FIFO groups or not, a DLQ up or down
    raw = [
        sqs.record(body, receive_count=count, group_id=group if fifo else None, sequence_number=index)
        for index, (body, count, group) in enumerate(batch)
    ]
    quarantine = InMemoryDLQ(fail=dlq_down)
    consumer = BatchConsumer(REGISTRY, quarantine, max_concurrent_records=concurrency)

    # WHEN the consumer handles it, it never raises past the response contract
    response = consumer.handle(sqs.event(*raw), FakeContext())

    # THEN every listed id is from the batch and listed once
    ids = [record["messageId"] for record in raw]
    listed = failed_ids(response)
    assert len(listed) == len(set(listed))
    assert set(listed) <= set(ids)
    # AND a quarantined message was accepted by the DLQ and is never also listed
    quarantined = set(quarantine.message_ids)
    assert not quarantined & set(listed)
    if dlq_down:
        assert quarantined == set()
    # AND in a standard queue, every poison message is quarantined (or listed while the DLQ is down)
    if not fifo:
        for record in raw:
            if is_poison(record["body"]):
                assert record["messageId"] in (set(listed) if dlq_down else quarantined)
    # AND in a FIFO queue, once a group has a listed record, all its later records are listed too
    if fifo:
        seen_failure: set[str] = set()
        for record in raw:
            group = record["attributes"]["MessageGroupId"]
            if group in seen_failure:
                assert record["messageId"] in listed
            if record["messageId"] in listed:
                seen_failure.add(group)
