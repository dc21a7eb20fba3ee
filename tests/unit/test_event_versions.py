"""Versioned event types: an old message runs after the deploy that moves its type on, a newer one waits."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict

from sqs_consumer.errors import PoisonMessageError, UnknownEventVersionError
from sqs_consumer.kinds import QuarantineKind
from sqs_consumer.models import BaseEvent
from sqs_consumer.models.record import RecordInfo
from sqs_consumer.pipeline.decisions import Decisions
from sqs_consumer.pipeline.dispositions import Listed, Quarantined
from sqs_consumer.registry import EventRegistry, Route
from sqs_consumer.retry import Backoff
from sqs_consumer.testing import events as sqs
from sqs_consumer.testing import run_batch
from sqs_consumer.testing.fakes import InMemoryIdempotency

# --- the event type "greeting" as it moves from version 1 to 2 to 3 -------------------------------------------


class GreetingV1Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str


class GreetingV1(BaseEvent):
    event_type: Literal["greeting"]
    payload: GreetingV1Payload


class GreetingV2Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    first_name: str
    last_name: str


class GreetingV2(BaseEvent):
    event_type: Literal["greeting"]
    event_version: Literal[2]
    payload: GreetingV2Payload


class GreetingV3Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    first_name: str
    last_name: str
    language: str


class GreetingV3(BaseEvent):
    event_type: Literal["greeting"]
    event_version: Literal[3]
    payload: GreetingV3Payload


def v1_to_v2(event: dict[str, Any]) -> dict[str, Any]:
    first, _, last = event["payload"]["name"].partition(" ")
    return {**event, "payload": {"first_name": first, "last_name": last}}


def v2_to_v3(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "payload": {**event["payload"], "language": "en"}}


class Seen:
    """A handler that keeps what it received."""

    def __init__(self) -> None:
        self.events: list[BaseEvent] = []

    def __call__(self, event: BaseEvent, record: RecordInfo) -> None:
        self.events.append(event)


def consumer_at(version: int, seen: Seen) -> EventRegistry:
    """The registry of a consumer deployed with "greeting" at ``version`` (and hello beside it: a tagged union)."""
    from sqs_consumer.routes import REGISTRY

    routes: dict[int, Route[Any]] = {
        1: Route(GreetingV1, seen),
        2: Route(GreetingV2, seen, upcasters={1: v1_to_v2}),
        3: Route(GreetingV3, seen, upcasters={1: v1_to_v2, 2: v2_to_v3}),
    }
    return EventRegistry([routes[version], REGISTRY.routes["hello"]])


def greeting(event_id: str = "evt_g1", version: object = None, **payload: Any) -> dict[str, Any]:
    document: dict[str, Any] = {"event_id": event_id, "event_type": "greeting"}
    document["payload"] = payload or {"name": "Ada Lovelace"}
    if version is not None:
        document["event_version"] = version
    return document


V2_PAYLOAD = {"first_name": "Ada", "last_name": "Lovelace"}


@pytest.mark.parametrize("shape", ["plain", "sns", "eventbridge", "offloaded"])
@pytest.mark.parametrize("declared", [None, 1], ids=["version-absent", "version-1"])
def test_v1_message_sent_before_the_deploy_runs_after_it_as_v2(shape: Any, declared: int | None):
    # GIVEN a v1 message, enqueued (in any shape) while the consumer ran version 1 of "greeting"
    message = greeting(version=declared)
    seen = Seen()

    # WHEN the consumer deployed with version 2 and an upcaster from 1 receives it
    result = run_batch(message, registry=consumer_at(2, seen), shape=shape)

    # THEN it succeeds and the handler receives the v2 model, upcast
    assert result.succeeded == ["evt_g1"]
    assert [type(event) for event in seen.events] == [GreetingV2]
    assert seen.events[0].event_version == 2
    assert seen.events[0].model_dump(mode="json")["payload"] == V2_PAYLOAD


def test_upcasters_chain_from_v1_to_v3_and_v2_to_v3():
    seen = Seen()
    result = run_batch(greeting("evt_a"), greeting("evt_b", 2, **V2_PAYLOAD), registry=consumer_at(3, seen))
    assert result.succeeded == ["evt_a", "evt_b"]
    assert [event.model_dump(mode="json")["payload"] for event in seen.events] == [
        {"first_name": "Ada", "last_name": "Lovelace", "language": "en"},
        {"first_name": "Ada", "last_name": "Lovelace", "language": "en"},
    ]
    assert {event.event_version for event in seen.events} == {3}


def test_a_current_version_body_never_goes_through_the_upcasters():
    # GIVEN a v2 consumer whose upcaster counts its calls
    calls: list[str] = []

    def counting(event: dict[str, Any]) -> dict[str, Any]:
        calls.append(event["event_id"])
        return v1_to_v2(event)

    registry = EventRegistry([Route(GreetingV2, Seen(), upcasters={1: counting})])

    # WHEN a v2 body and a v1 body are parsed
    registry.parse(json.dumps(greeting("evt_v2", 2, **V2_PAYLOAD)))
    with pytest.raises(PoisonMessageError):  # parse is the fast path alone: it never upcasts
        registry.parse(json.dumps(greeting("evt_v1")))

    # THEN the fast path validated the current one alone
    assert calls == []


def test_v3_message_to_a_v2_consumer_is_listed_with_backoff_until_its_last_receive():
    # GIVEN a v3 message reaching a consumer that knows version 2 at most (a v3 one may be deploying)
    message = greeting(version=3, first_name="Ada", last_name="Lovelace", language="en")
    seen = Seen()

    # WHEN it is received, not for the last time
    result = run_batch(message, registry=consumer_at(2, seen), receive_count=2, max_receive_count=5)

    # THEN it is listed to come back, never quarantined, and its handler does not run
    assert result.listed == ["evt_g1"]
    assert result.dlq.sent == []
    assert seen.events == []


def test_v3_message_to_a_v2_consumer_is_quarantined_unknown_event_version_on_its_last_receive():
    message = greeting(version=3, first_name="Ada", last_name="Lovelace", language="en")

    result = run_batch(message, registry=consumer_at(2, Seen()), receive_count=5, max_receive_count=5)

    outcome = result.quarantined["evt_g1"]
    assert outcome.kind == "unknown_event_version"
    assert "event_version 3 of 'greeting' is newer than this consumer's version 2" in (outcome.reason or "")
    assert result.dlq.sent[0].event_type == "greeting"


def test_v2_message_to_a_consumer_at_version_1_is_listed_not_invalid():
    result = run_batch(greeting(version=2, **V2_PAYLOAD), registry=consumer_at(1, Seen()))

    assert result.listed == ["evt_g1"]


def test_a_v1_resend_of_a_processed_v2_event_is_a_duplicate():
    # GIVEN a v2 event processed by the v2 consumer
    store = InMemoryIdempotency()
    seen = Seen()
    assert run_batch(greeting("evt_1", 2, **V2_PAYLOAD), registry=consumer_at(2, seen), idempotency=store).succeeded

    # WHEN a producer still on v1 sends the same event again, in its old shape
    result = run_batch(greeting("evt_1"), registry=consumer_at(2, seen), idempotency=store)

    # THEN it is acknowledged as a duplicate: the store compares the upcast event
    assert result.duplicates == ["evt_1"]
    assert len(seen.events) == 1


def test_a_v1_resend_with_another_payload_is_a_reused_event_id():
    store = InMemoryIdempotency()
    run_batch(greeting("evt_1", 2, **V2_PAYLOAD), registry=consumer_at(2, Seen()), idempotency=store)

    result = run_batch(greeting("evt_1", name="Grace Hopper"), registry=consumer_at(2, Seen()), idempotency=store)

    assert result.quarantined["evt_1"].kind == "reused_event_id"


@pytest.mark.parametrize("deployed", [2, 3])
def test_a_v1_message_processed_before_the_deploy_and_redelivered_after_it_is_a_duplicate(deployed: int):
    # GIVEN a v1 message processed by the consumer at version 1 (the store holds version 1's fingerprint)
    store, seen = InMemoryIdempotency(), Seen()
    assert run_batch(greeting("evt_1"), registry=consumer_at(1, seen), idempotency=store).succeeded == ["evt_1"]

    # WHEN SQS delivers the same message again after the deploy that moved "greeting" on
    result = run_batch(greeting("evt_1"), registry=consumer_at(deployed, seen), idempotency=store)

    # THEN it is a duplicate: the body is compared at the version the store's fingerprint is of
    assert result.duplicates == ["evt_1"]
    assert result.quarantined == {}
    assert len(seen.events) == 1


def test_a_v1_message_processed_as_v2_and_redelivered_after_the_move_to_v3_is_a_duplicate():
    # GIVEN a v1 message upcast and processed by the consumer at version 2 (version 2's fingerprint stored)
    store, seen = InMemoryIdempotency(), Seen()
    assert run_batch(greeting("evt_1"), registry=consumer_at(2, seen), idempotency=store).succeeded == ["evt_1"]

    # WHEN it comes again to the consumer at version 3
    result = run_batch(greeting("evt_1"), registry=consumer_at(3, seen), idempotency=store)

    # THEN its upcast to version 2 on the way is what is compared: a duplicate
    assert result.duplicates == ["evt_1"]
    assert len(seen.events) == 1


def test_another_payload_under_an_event_id_stored_before_the_deploy_is_a_reused_event_id():
    # GIVEN evt_1 processed by the consumer at version 1
    store = InMemoryIdempotency()
    run_batch(greeting("evt_1"), registry=consumer_at(1, Seen()), idempotency=store)

    # WHEN, after the deploy to version 2, a v1 body with another payload and the same id arrives
    seen = Seen()
    result = run_batch(greeting("evt_1", name="Grace Hopper"), registry=consumer_at(2, seen), idempotency=store)

    # THEN it is quarantined, never acknowledged, and its handler does not run
    assert result.quarantined["evt_1"].kind == "reused_event_id"
    assert (
        "the stored event has another event_type or payload than this body had at event_version 1, the stored one's"
        in (result.quarantined["evt_1"].reason or "")
    )
    assert result.duplicates == [] and seen.events == []


def test_a_v2_body_of_an_event_stored_at_version_1_cannot_be_compared_and_is_quarantined():
    # GIVEN evt_1 processed by the consumer at version 1
    store = InMemoryIdempotency()
    run_batch(greeting("evt_1"), registry=consumer_at(1, Seen()), idempotency=store)

    # WHEN a producer on version 2 sends the same id after the deploy: a v2 body was never at version 1
    result = run_batch(greeting("evt_1", 2, **V2_PAYLOAD), registry=consumer_at(2, Seen()), idempotency=store)

    # THEN it is not acknowledged: quarantined, saying why it could not be compared
    outcome = result.quarantined["evt_1"]
    assert outcome.kind == "reused_event_id"
    assert "holds event_version 1's fingerprint and this body was never at that version" in (outcome.reason or "")


def test_a_copy_in_the_batch_is_judged_against_the_stored_version_too():
    # GIVEN evt_1 processed at version 1
    store = InMemoryIdempotency()
    run_batch(greeting("evt_1"), registry=consumer_at(1, Seen()), idempotency=store)

    # WHEN, at version 2, a batch carries another payload under evt_1 and then the original v1 body
    result = run_batch(
        greeting("evt_1", name="Grace Hopper"), greeting("evt_1"), registry=consumer_at(2, Seen()), idempotency=store
    )

    # THEN the first is a reused event_id and the copy, the stored event itself, a duplicate
    assert result.quarantined["evt_1"].kind == "reused_event_id"
    assert result.duplicates == ["evt_1"]


def test_a_body_its_upcaster_cannot_read_is_invalid_payload_naming_the_upcaster():
    # GIVEN a v1 body without the name its upcaster reads
    result = run_batch(greeting(nickname="ada"), registry=consumer_at(2, Seen()))

    outcome = result.quarantined["evt_g1"]
    assert outcome.kind == "invalid_payload"
    assert "the upcaster from version 1 raised KeyError" in (outcome.reason or "")


def test_an_upcast_body_the_model_refuses_is_invalid_payload_saying_it_was_upcast():
    def broken(event: dict[str, Any]) -> dict[str, Any]:
        return {**event, "payload": {"first_name": "Ada"}}

    registry = EventRegistry([Route(GreetingV2, Seen(), upcasters={1: broken})])
    result = run_batch(greeting(), registry=registry)

    outcome = result.quarantined["evt_g1"]
    assert outcome.kind == "invalid_payload"
    assert "upcast from event_version 1 to 2: payload.last_name: Field required" in (outcome.reason or "")


@pytest.mark.parametrize("version", [0, "2", True, 2.5])
def test_an_event_version_that_is_not_a_positive_whole_number_is_invalid_envelope(version: object):
    result = run_batch(greeting(version=version, **V2_PAYLOAD), registry=consumer_at(2, Seen()))

    outcome = result.quarantined["evt_g1"]
    assert outcome.kind == "invalid_envelope"
    assert "event_version" in (outcome.reason or "")


def test_a_route_needs_one_upcaster_from_each_older_version():
    needs = r"GreetingV3 is version 3: it needs one upcaster from each older version \[1, 2\]"
    with pytest.raises(ValueError, match=needs):
        Route(GreetingV3, Seen(), upcasters={2: v2_to_v3})
    with pytest.raises(ValueError, match="needs one upcaster"):
        Route(GreetingV1, Seen(), upcasters={1: v1_to_v2})


def test_a_model_at_version_2_must_require_its_version():
    class Defaulted(BaseEvent):
        event_type: Literal["greeting"]
        event_version: Literal[2] = 2
        payload: GreetingV2Payload

    with pytest.raises(TypeError, match="must be required"):
        Route(Defaulted, Seen(), upcasters={1: v1_to_v2})


def test_an_upcaster_that_changes_the_event_id_is_a_bug_listed_not_a_new_event():
    def renaming(event: dict[str, Any]) -> dict[str, Any]:
        return {**v1_to_v2(event), "event_id": "other"}

    result = run_batch(greeting(), registry=EventRegistry([Route(GreetingV2, Seen(), upcasters={1: renaming})]))

    assert result.listed == ["evt_g1"]


def test_a_newer_version_waits_the_retry_backoff_and_is_quarantined_only_on_the_last_receive():
    # GIVEN the rules of a queue of 5 receives with a 10 s backoff, and a v3 body refused by a v2 consumer
    decisions = Decisions(5, Backoff(10, 300))
    error = UnknownEventVersionError("greeting", 3, 2)
    second, last = (RecordInfo(sqs.record("{}", receive_count=count)) for count in (2, 5))

    # WHEN it is received a second time, then a fifth
    retried, quarantined = decisions.failure(second, error, "greeting"), decisions.failure(last, error, "greeting")

    # THEN it comes back after the backoff (10 to 20 s), then goes to the DLQ as unknown_event_version
    assert isinstance(retried, Listed)
    assert 10 <= retried.delay_s <= 20
    assert isinstance(quarantined, Quarantined)
    assert quarantined.kind == QuarantineKind.UNKNOWN_EVENT_VERSION
    assert quarantined.reason == (
        "event_version 3 of 'greeting' is newer than this consumer's version 2, on each of 5 receive(s)"
    )
