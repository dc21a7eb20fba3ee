"""Follow-up events sent exactly once: stored with the completion, sent after it, what is left sent by the
next delivery (docs/design.md §4, "Follow-up events")."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from sqs_consumer.errors import FollowUpError
from sqs_consumer.followups import FOLLOWUP_NAMESPACE, MAX_FOLLOWUP_BYTES, followup_event_id
from sqs_consumer.models import HelloEvent
from sqs_consumer.models.record import RecordInfo
from sqs_consumer.registry import EventRegistry, Route
from sqs_consumer.testing import InMemoryIdempotency, InMemorySender, events, run_batch


def hello(event_id: str, name: str = "x", **payload: object) -> dict[str, object]:
    return {"event_id": event_id, "event_type": "hello", "payload": {"name": name, **payload}}


def emitting(*destinations: str, fail_after: bool = False, size: int = 10) -> EventRegistry:
    """A hello route whose handler emits one follow-up to each of ``destinations`` (and then raises)."""

    def handle(event: HelloEvent, record: RecordInfo) -> None:
        for to in destinations:
            record.emit({"event_type": "hello", "payload": {"name": f"{event.payload.name}>{to}", "pad": "p" * size}},
                        to=to)  # fmt: skip
        if fail_after:
            raise RuntimeError("failed after emitting")

    return EventRegistry([Route(HelloEvent, handle)])


def test_a_followup_is_sent_after_the_completion_with_an_id_derived_from_its_parent_and_position():
    # GIVEN a handler that emits two follow-ups
    sender, store = InMemorySender.to("billing", "audit"), InMemoryIdempotency()

    # WHEN its record runs
    result = run_batch(hello("evt_1", "a"), registry=emitting("billing", "audit"), sender=sender, idempotency=store)

    # THEN the record succeeded, each follow-up went to its destination with its derived id
    assert result.succeeded == ["evt_1"]
    assert [(to, event["event_id"], event["payload"]["name"]) for to, event in sender.sent] == [
        ("billing", str(uuid.uuid5(FOLLOWUP_NAMESPACE, "evt_1/0")), "a>billing"),
        ("audit", str(uuid.uuid5(FOLLOWUP_NAMESPACE, "evt_1/1")), "a>audit"),
    ]
    # AND the store holds the completion with nothing left to send (marked sent)
    assert store.records["evt_1"][0] == "COMPLETED"
    assert store.followups == {}


def test_followup_ids_are_the_same_on_every_run_and_differ_by_parent_and_position():
    assert followup_event_id("evt_1", 0) == followup_event_id("evt_1", 0)
    assert len({followup_event_id("evt_1", 0), followup_event_id("evt_1", 1), followup_event_id("evt_2", 0)}) == 3


def test_a_handler_that_raises_after_emitting_sends_nothing_and_stores_nothing():
    sender, store = InMemorySender.to("billing"), InMemoryIdempotency()

    result = run_batch(hello("evt_1"), registry=emitting("billing", fail_after=True), sender=sender, idempotency=store)

    assert result.listed == ["evt_1"]
    assert sender.sent == []
    assert store.followups == {}
    assert "evt_1" not in store.records  # its claim released: the retry runs the handler again


def test_a_failed_send_lists_the_record_and_its_next_delivery_sends_what_is_left_without_running_again():
    # GIVEN a destination that refuses the follow-up the first time
    sender, store = InMemorySender.to("billing", "audit"), InMemoryIdempotency()
    sender.fail = {"audit"}
    registry = emitting("billing", "audit")

    # WHEN the record runs
    first = run_batch(hello("evt_1", "a"), registry=registry, sender=sender, idempotency=store)

    # THEN it is listed, its completion standing with the unsent follow-up kept in the store
    assert first.listed == ["evt_1"]
    assert store.records["evt_1"][0] == "COMPLETED"
    assert [f.to for f in store.followups["evt_1"]] == ["audit"]
    assert [to for to, _ in sender.sent] == ["billing"]

    # WHEN it is delivered again and the destination accepts
    sender.fail = False
    again = run_batch(hello("evt_1", "a"), registry=registry, sender=sender, idempotency=store, receive_count=2)

    # THEN it is a duplicate (its handler does not run again) that sent only what was left, with the same id
    assert again.duplicates == ["evt_1"]
    assert again["evt_1"].handler_calls == 0
    assert [(to, event["event_id"]) for to, event in sender.sent] == [
        ("billing", followup_event_id("evt_1", 0)),
        ("audit", followup_event_id("evt_1", 1)),
    ]
    assert store.followups == {}


def test_a_send_that_fails_on_the_last_receive_quarantines_the_record_and_keeps_the_followups():
    sender, store = InMemorySender.to("billing"), InMemoryIdempotency()
    sender.fail = True

    result = run_batch(hello("evt_1"), registry=emitting("billing"), sender=sender, idempotency=store,
                       receive_count=5, max_receive_count=5)  # fmt: skip

    assert result.quarantined["evt_1"].kind == "retries_exhausted"
    assert "follow-up" in (result.quarantined["evt_1"].reason or "")
    # A redrive from the DLQ is a duplicate that sends them.
    assert [f.to for f in store.followups["evt_1"]] == ["billing"]


def test_an_undeclared_destination_is_a_handler_error_that_names_it():
    result = run_batch(hello("evt_1"), registry=emitting("nowhere"), sender=InMemorySender.to("billing"),
                       receive_count=5, max_receive_count=5)  # fmt: skip

    reason = result.quarantined["evt_1"].reason or ""
    assert "'nowhere' is not declared" in reason
    assert "billing" in reason


def test_a_consumer_without_destinations_refuses_emit_clearly():
    result = run_batch(hello("evt_1"), registry=emitting("billing"), receive_count=5, max_receive_count=5)

    assert "sends no follow-ups" in (result.quarantined["evt_1"].reason or "")


def test_a_followup_larger_than_an_sqs_message_is_quarantined_at_once():
    result = run_batch(hello("evt_1"), registry=emitting("billing", size=MAX_FOLLOWUP_BYTES),
                       sender=InMemorySender.to("billing"))  # fmt: skip

    assert result.quarantined["evt_1"].kind == "non_retryable"
    assert "an SQS message holds" in (result.quarantined["evt_1"].reason or "")


def test_followups_together_larger_than_the_store_item_are_quarantined_at_once():
    # GIVEN two follow-ups of 200 KB each: each fits a message, together not an idempotency item
    sender = InMemorySender.to("billing", "audit")
    result = run_batch(hello("evt_1"), registry=emitting("billing", "audit", size=200_000), sender=sender)

    assert result.quarantined["evt_1"].kind == "non_retryable"
    assert "400 KB" in (result.quarantined["evt_1"].reason or "")
    assert sender.sent == []


def test_emit_refuses_what_is_not_an_event():
    def handle(event: HelloEvent, record: RecordInfo) -> None:
        record.emit({"payload": {}}, to="billing")

    result = run_batch(hello("evt_1"), registry=EventRegistry([Route(HelloEvent, handle)]),
                       sender=InMemorySender.to("billing"), receive_count=5, max_receive_count=5)  # fmt: skip

    assert "needs an event_type" in (result.quarantined["evt_1"].reason or "")


def test_an_event_model_is_sent_with_the_derived_id_in_place_of_its_own():
    def handle(event: HelloEvent, record: RecordInfo) -> None:
        record.emit(HelloEvent(event_id="ignored", event_type="hello", payload={"name": "next"}), to="billing")

    sender = InMemorySender.to("billing")
    run_batch(hello("evt_1"), registry=EventRegistry([Route(HelloEvent, handle)]), sender=sender)

    [(to, sent)] = sender.sent
    assert to == "billing"
    assert sent["event_id"] == followup_event_id("evt_1", 0)
    assert HelloEvent.model_validate(sent).payload.name == "next"


def test_async_handlers_emit_too():
    async def handle(event: HelloEvent, record: RecordInfo) -> None:
        await asyncio.sleep(0)
        record.emit({"event_type": "hello", "payload": {"name": event.event_id}}, to="billing")

    sender = InMemorySender.to("billing")
    result = run_batch(hello("evt_1"), hello("evt_2"), registry=EventRegistry([Route(HelloEvent, handle)]),
                       sender=sender)  # fmt: skip

    assert result.succeeded == ["evt_1", "evt_2"]
    assert sorted(event["payload"]["name"] for _, event in sender.sent) == ["evt_1", "evt_2"]


def test_records_that_emit_nothing_pay_no_store_write_and_no_send():
    # GIVEN the same batch on a consumer without destinations and one with them
    batch = [hello(f"evt_{i}") for i in range(10)]
    plain, declared = InMemoryIdempotency(), InMemoryIdempotency()
    sender = InMemorySender.to("billing")

    run_batch(*batch, registry=emitting(), idempotency=plain)
    run_batch(*batch, registry=emitting(), idempotency=declared, sender=sender)

    # THEN declaring destinations costs records that emit nothing no write and no send
    assert declared.writes == plain.writes
    assert sender.calls == 0


def test_a_record_that_emits_costs_one_send_and_one_write_to_mark_it():
    plain, emitted = InMemoryIdempotency(), InMemoryIdempotency()
    sender = InMemorySender.to("billing")

    run_batch(hello("evt_1"), registry=emitting(), idempotency=plain)
    run_batch(hello("evt_1"), registry=emitting("billing"), idempotency=emitted, sender=sender)

    assert (emitted.writes - plain.writes, sender.calls) == (1, 1)


def test_record_info_outside_a_consumer_cannot_emit():
    with pytest.raises(NotImplementedError):
        RecordInfo(events.record("{}")).emit({"event_type": "hello", "payload": {}}, to="billing")


def test_a_handler_may_catch_the_error_of_an_undeclared_destination():
    # An undeclared destination raises FollowUpError: a handler may catch it.
    caught: list[Any] = []

    def handle(event: HelloEvent, record: RecordInfo) -> None:
        try:
            record.emit({"event_type": "hello", "payload": {}}, to="nowhere")
        except FollowUpError as exc:
            caught.append(exc)

    result = run_batch(hello("evt_1"), registry=EventRegistry([Route(HelloEvent, handle)]),
                       sender=InMemorySender.to("billing"))  # fmt: skip

    assert result.succeeded == ["evt_1"] and len(caught) == 1


def test_a_sender_that_raises_or_answers_short_leaves_the_records_listed_with_their_followups_stored():
    class Raising(InMemorySender):
        def send(self, followups: Any, deadline: Any) -> list[Exception | None]:
            raise ConnectionError("endpoint unreachable")

    class Short(InMemorySender):
        def send(self, followups: Any, deadline: Any) -> list[Exception | None]:
            return []

    for sender in (Raising.to("billing"), Short.to("billing")):
        store = InMemoryIdempotency()
        result = run_batch(hello("evt_1"), registry=emitting("billing"), sender=sender, idempotency=store)
        assert result.listed == ["evt_1"]
        assert [f.to for f in store.followups["evt_1"]] == ["billing"]
