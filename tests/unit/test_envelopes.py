"""The shapes a body may take (docs/design.md §3): each unwrapped to its event, each half-match poison."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import weakref
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest

from sqs_consumer import envelopes, payload_store
from sqs_consumer.envelopes import Unwrapper, pointer_in
from sqs_consumer.errors import PoisonMessageError
from sqs_consumer.models import DocumentProcessedEvent, HelloEvent
from sqs_consumer.models.record import Envelope, RecordInfo
from sqs_consumer.payloads import LEGACY_POINTER_CLASS, POINTER_CLASS, PayloadPointer
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.pipeline.records import Job, Unparsed, parse_records
from sqs_consumer.quarantine import QuarantinedMessage
from sqs_consumer.registry import EventRegistry, Route
from sqs_consumer.routes import REGISTRY
from sqs_consumer.testing import events as sqs
from sqs_consumer.testing.events import TOPIC_ARN, eventbridge_event, pointer_body, size_attribute, sns_notification
from sqs_consumer.testing.fakes import FakeClock, FakeContext, InMemoryDLQ, InMemoryIdempotency
from tests.conftest import failed_ids

BUCKET = "payloads-bucket"


class Seen:
    """A ``hello`` handler keeping each event and the RecordInfo it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, RecordInfo]] = []
        self.count: Counter[str] = Counter()

    def __call__(self, event: Any, info: RecordInfo) -> None:
        self.calls.append((event, info))
        self.count[event.event_id] += 1


class Payloads:
    """S3Payloads' interface over a dict of pointer -> text; other pointers fail as a throttled GET would."""

    max_bytes = 32 * 1_048_576
    prefetch_bytes = 64 * 1_048_576
    memory_bytes = None

    def __init__(self, objects: dict[PayloadPointer, str]) -> None:
        self.objects = objects
        self.reads: list[PayloadPointer] = []
        self.threads: list[str] = []  # where each read ran

    def read(self, pointer: PayloadPointer, size: int | None, fetches: Any = None) -> bytes:
        self.reads.append(pointer)
        self.threads.append(threading.current_thread().name)
        if pointer not in self.objects:
            raise ConnectionError("SlowDown: please reduce your request rate")
        return self.objects[pointer].encode()


def consumer(seen: Seen, quarantine: InMemoryDLQ, payloads: Any = None, **kwargs: Any) -> BatchConsumer:
    registry = EventRegistry([Route(HelloEvent, seen), Route(DocumentProcessedEvent, seen)])
    return BatchConsumer(registry, quarantine, payloads=payloads, max_receive_count=5, **kwargs)


def hello(event_id: str, name: str = "world") -> dict[str, Any]:
    return json.loads(sqs.body("hello", {"name": name}, event_id=event_id))


def run(c: BatchConsumer, *records: dict[str, Any]) -> set[str]:
    return set(failed_ids(c.handle(sqs.event(*records), FakeContext())))


def test_an_sns_notification_gives_its_message_and_the_notification_to_the_handler():
    seen, quarantine = Seen(), InMemoryDLQ()
    body = sns_notification(json.dumps(hello("e-1")), message_id="sns-1", subject="Orders",
                            attributes={"tenant": ("String", "acme")})  # fmt: skip
    assert run(consumer(seen, quarantine), sqs.record(body)) == set()
    [(event, info)] = seen.calls
    assert event.event_id == "e-1"
    assert info.sns is not None
    assert (info.sns.message_id, info.sns.topic_arn, info.sns.subject) == ("sns-1", TOPIC_ARN, "Orders")
    assert info.sns.message_attributes["tenant"].value == "acme"
    assert info.eventbridge is None and info.payload_pointer is None


def test_an_eventbridge_event_whose_detail_is_an_event_gives_that_event():
    seen, quarantine = Seen(), InMemoryDLQ()
    body = eventbridge_event(hello("e-2", "detail"), detail_type="Order Placed", event_id="eb-1",
                             resources=["arn:aws:s3:::b"])  # fmt: skip
    assert run(consumer(seen, quarantine), sqs.record(body)) == set()
    [(event, info)] = seen.calls
    assert (event.event_id, event.payload.name) == ("e-2", "detail")
    assert info.eventbridge is not None
    assert (info.eventbridge.id, info.eventbridge.source, info.eventbridge.detail_type) == (
        "eb-1", "com.example.orders", "Order Placed")  # fmt: skip
    assert info.eventbridge.resources == ["arn:aws:s3:::b"]
    assert info.eventbridge.time.year == 2026


def test_a_plain_eventbridge_event_becomes_the_event_of_its_detail_type_with_its_id():
    seen, quarantine = Seen(), InMemoryDLQ()
    body = eventbridge_event({"name": "plain"}, detail_type="hello", event_id="eb-2")
    assert run(consumer(seen, quarantine), sqs.record(body)) == set()
    [(event, _)] = seen.calls
    assert (event.event_id, event.event_type, event.payload.name) == ("eb-2", "hello", "plain")


@pytest.mark.parametrize("legacy", [False, True], ids=["ExtendedPayloadSize", "SQSLargePayloadSize"])
def test_an_offloaded_payload_is_fetched_and_its_pointer_given_to_the_handler(legacy):
    seen, quarantine = Seen(), InMemoryDLQ()
    text = json.dumps(hello("e-3"))
    payloads = Payloads({PayloadPointer(BUCKET, "k-3"): text})
    record = sqs.record(pointer_body(BUCKET, "k-3"), message_attributes=size_attribute(len(text), legacy=legacy))
    assert run(consumer(seen, quarantine, payloads), record) == set()
    [(event, info)] = seen.calls
    assert event.event_id == "e-3"
    assert info.payload_pointer == PayloadPointer(BUCKET, "k-3")
    assert info.envelope.payload_size == len(text)


def test_the_legacy_pointer_class_is_read_too():
    seen, quarantine = Seen(), InMemoryDLQ()
    payloads = Payloads({PayloadPointer(BUCKET, "old"): json.dumps(hello("e-old"))})
    body = json.dumps([LEGACY_POINTER_CLASS, {"s3BucketName": BUCKET, "s3Key": "old"}])
    assert run(consumer(seen, quarantine, payloads), sqs.record(body)) == set()
    assert [event.event_id for event, _ in seen.calls] == ["e-old"]


def test_a_pointer_in_an_sns_notification_takes_its_size_from_the_notifications_attributes():
    seen, quarantine = Seen(), InMemoryDLQ()
    text = json.dumps(hello("e-4"))
    payloads = Payloads({PayloadPointer(BUCKET, "k-4"): text})
    body = sns_notification(pointer_body(BUCKET, "k-4"), attributes={"ExtendedPayloadSize": ("Number", str(len(text)))})
    assert run(consumer(seen, quarantine, payloads), sqs.record(body)) == set()
    [(event, info)] = seen.calls
    assert event.event_id == "e-4"
    assert info.sns is not None and info.payload_pointer == PayloadPointer(BUCKET, "k-4")
    assert info.envelope.payload_size == len(text)


def test_an_eventbridge_event_published_through_sns_is_unwrapped_twice():
    seen, quarantine = Seen(), InMemoryDLQ()
    body = sns_notification(eventbridge_event({"name": "x"}, event_id="eb-5"))
    assert run(consumer(seen, quarantine), sqs.record(body)) == set()
    [(event, info)] = seen.calls
    assert event.event_id == "eb-5" and info.sns is not None and info.eventbridge is not None


def test_the_fast_path_gives_an_event_alone_no_envelope():
    seen, quarantine = Seen(), InMemoryDLQ()
    assert run(consumer(seen, quarantine), sqs.record(sqs.body("hello", event_id="alone"))) == set()
    [(_, info)] = seen.calls
    assert not info.envelope and info.sns is None and info.eventbridge is None and info.payload_pointer is None
    assert "envelope" not in repr(info)


HALF_MATCHES = [
    pytest.param(json.dumps({"Type": "Notification", "TopicArn": TOPIC_ARN, "MessageId": "m"}), "invalid_envelope",
                 "resembles an SNS notification, but Message: Field required", id="sns-without-message"),
    pytest.param(json.dumps({**json.loads(sns_notification("{}")), "Type": "SubscriptionConfirmation",
                             "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"
                                             f"&TopicArn={TOPIC_ARN}&Token=2336412f37"}),
                 "invalid_envelope", f"an SNS SubscriptionConfirmation for {TOPIC_ARN}, not a notification: it "
                 "holds no event. To confirm, open its SubscribeURL (https://sns.us-east-1.amazonaws.com/?Action=",
                 id="sns-subscription-confirmation"),
    pytest.param(json.dumps({**json.loads(sns_notification("{}")), "Message": {"event_id": "e"}}), "invalid_envelope",
                 "resembles an SNS notification, but Message: Input should be a valid string", id="sns-message-object"),
    pytest.param(sns_notification("not json"), "malformed_json", "in the SNS notification's Message: Invalid JSON",
                 id="sns-message-not-json"),
    pytest.param(sns_notification(sns_notification("{}")), "invalid_envelope",
                 "resembles an SNS notification, but found in the SNS notification's Message", id="sns-in-sns"),
    pytest.param(json.dumps({"detail-type": "hello", "source": "s", "detail": {}}), "invalid_envelope",
                 "resembles an EventBridge event, but version: Field required", id="eventbridge-without-id"),
    pytest.param(json.dumps({**json.loads(eventbridge_event({})), "detail": "text"}), "invalid_envelope",
                 "resembles an EventBridge event, but detail: Input should be a valid dictionary",
                 id="eventbridge-detail-not-object"),
    pytest.param(eventbridge_event({"event_type": "hello", "event_id": "e", "payload": {}}), "invalid_payload",
                 "in the EventBridge event's detail: payload.name: Field required", id="eventbridge-detail-bad-event"),
    pytest.param(eventbridge_event({"name": "x"}, detail_type="example.unregistered"), "unknown_event_type",
                 "in the EventBridge event's event {event_id: id, event_type: detail-type, payload: detail}: "
                 "unknown event_type 'example.unregistered'", id="eventbridge-unknown-detail-type"),
    pytest.param(json.dumps([POINTER_CLASS, {"s3BucketName": BUCKET}]), "invalid_envelope",
                 "resembles an S3 payload pointer, but without s3Key", id="pointer-without-key"),
    pytest.param(json.dumps([POINTER_CLASS, "s3://b/k"]), "invalid_envelope",
                 "resembles an S3 payload pointer, but the second item must be an object", id="pointer-not-object"),
    pytest.param(sqs.body("hello", {}), "invalid_payload", "payload.name: Field required", id="event-alone-as-today"),
    pytest.param("{not json", "malformed_json", "Invalid JSON", id="malformed-as-today"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "kind", "reason"), HALF_MATCHES)
@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
def test_a_body_that_half_matches_a_shape_is_quarantined_with_a_reason_naming_it(body, kind, reason, fifo):
    seen, quarantine = Seen(), InMemoryDLQ()
    record = sqs.record(body, group_id="g" if fifo else None)
    assert run(consumer(seen, quarantine, Payloads({})), record) == set()
    [message] = quarantine.sent
    assert (message.kind, message.body) == (kind, body)
    assert message.reason.startswith(reason), message.reason
    assert seen.calls == []


def test_a_pointer_with_a_size_attribute_that_is_not_a_byte_count_is_quarantined_before_any_fetch():
    seen, quarantine, payloads = Seen(), InMemoryDLQ(), Payloads({})
    record = sqs.record(pointer_body(BUCKET, "k"), message_attributes=size_attribute(-1))
    assert run(consumer(seen, quarantine, payloads), record) == set()
    [message] = quarantine.sent
    assert message.kind == "invalid_envelope" and "is not a byte count" in message.reason
    assert payloads.reads == []


def test_a_payload_pointing_to_another_payload_is_poison():
    seen, quarantine = Seen(), InMemoryDLQ()
    payloads = Payloads({PayloadPointer(BUCKET, "a"): pointer_body(BUCKET, "b")})
    assert run(consumer(seen, quarantine, payloads), sqs.record(pointer_body(BUCKET, "a"))) == set()
    [message] = quarantine.sent
    assert message.reason.startswith(
        "resembles an S3 payload pointer, but found in the payload at s3://payloads-bucket/a"
    )
    assert payloads.reads == [PayloadPointer(BUCKET, "a")]


@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
def test_the_same_event_by_two_shapes_is_a_duplicate(fifo):
    # GIVEN one event sent alone, through SNS, through EventBridge and offloaded, in one batch
    seen, quarantine, store = Seen(), InMemoryDLQ(), InMemoryIdempotency()
    text = json.dumps(hello("same"))
    payloads = Payloads({PayloadPointer(BUCKET, "same"): text})
    bodies = [text, sns_notification(text), eventbridge_event(hello("same")), pointer_body(BUCKET, "same")]
    records = [sqs.record(body, group_id="g" if fifo else None, sequence_number=i) for i, body in enumerate(bodies)]
    # WHEN the batch is consumed
    assert run(consumer(seen, quarantine, payloads, idempotency=store), *records) == set()
    # THEN its handler ran once, and a redelivery of any shape is a duplicate
    assert seen.count == Counter({"same": 1})
    assert run(consumer(seen, quarantine, payloads, idempotency=store), sqs.record(sns_notification(text))) == set()
    assert seen.count == Counter({"same": 1})
    assert quarantine.sent == []


def test_a_plain_eventbridge_event_with_a_reused_id_is_caught_as_any_event():
    seen, quarantine, store = Seen(), InMemoryDLQ(), InMemoryIdempotency()
    first = eventbridge_event({"name": "a"}, event_id="eb-r")
    second = eventbridge_event({"name": "b"}, event_id="eb-r")
    assert run(consumer(seen, quarantine, idempotency=store), sqs.record(first), sqs.record(second)) == set()
    assert [message.kind for message in quarantine.sent] == ["reused_event_id"]


@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
def test_a_payload_not_fetched_is_listed_and_on_fifo_holds_back_its_group(fifo):
    seen, quarantine = Seen(), InMemoryDLQ()
    payloads = Payloads({})  # every fetch throttled
    group = "g" if fifo else None
    unfetched = sqs.record(pointer_body(BUCKET, "gone-for-now"), group_id=group, sequence_number=1)
    after = sqs.record(sqs.body("hello", event_id="after"), group_id=group, sequence_number=2)
    failed = run(consumer(seen, quarantine, payloads), unfetched, after)
    assert failed == ({unfetched["messageId"], after["messageId"]} if fifo else {unfetched["messageId"]})
    assert seen.count == (Counter() if fifo else Counter({"after": 1}))
    assert quarantine.sent == []


def test_a_payload_never_fetched_is_quarantined_on_the_last_receive_with_its_pointer_body():
    seen, quarantine = Seen(), InMemoryDLQ()
    record = sqs.record(pointer_body(BUCKET, "k"), receive_count=5, message_attributes=size_attribute(10))
    assert run(consumer(seen, quarantine, Payloads({})), record) == set()
    [message] = quarantine.sent
    assert message.kind == "retries_exhausted" and "SlowDown" in message.reason
    assert message.body == pointer_body(BUCKET, "k")


def test_without_a_payload_store_a_pointer_is_listed_never_lost():
    seen, quarantine = Seen(), InMemoryDLQ()
    record = sqs.record(pointer_body(BUCKET, "k"))
    assert run(consumer(seen, quarantine), record) == {record["messageId"]}


def test_a_quarantined_pointer_keeps_its_size_attribute_within_sqs_ten_attributes():
    originals = {f"a{index}": {"stringValue": "v", "dataType": "String"} for index in range(8)}
    originals |= size_attribute(123_456)
    message = QuarantinedMessage(body=pointer_body(BUCKET, "k"), kind="payload_missing", reason="gone",
                                 source_message_id="m", source_queue_arn=sqs.QUEUE_ARN, receive_count=1,
                                 original_attributes=originals)  # fmt: skip
    attributes = message.attributes(datetime.now(UTC))
    assert len(attributes) == 10
    assert attributes["ExtendedPayloadSize"] == {"DataType": "Number", "StringValue": "123456"}


def test_a_batch_of_events_alone_never_imports_the_envelopes_nor_makes_an_s3_client():
    code = """
import sys
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.pipeline.records import Job, Unparsed, parse_records
from sqs_consumer.payload_store import S3Payloads
from sqs_consumer.routes import REGISTRY
from sqs_consumer.testing import events as sqs
from sqs_consumer.testing.fakes import FakeContext, InMemoryDLQ
made = []
payloads = S3Payloads(1_000_000, client_factory=lambda endpoint: made.append(endpoint))
consumer = BatchConsumer(REGISTRY, InMemoryDLQ(), payloads=payloads)
consumer.handle(sqs.event(*(sqs.record(sqs.body("hello")) for _ in range(10))), FakeContext())
print("sqs_consumer.envelopes" in sys.modules, made)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split("\n")[-2] == "False []"


def test_unwrapping_a_body_the_fast_path_refused_returns_the_registrys_poison_for_an_event_alone():
    body = sqs.body("example.unregistered")
    with pytest.raises(pydantic.ValidationError) as refused:
        REGISTRY.validate_json(body)
    with pytest.raises(PoisonMessageError) as raised:
        Unwrapper(REGISTRY, None).unwrap(sqs.record(body), refused.value, Envelope())
    assert (raised.value.kind, raised.value.reason) == (REGISTRY.poison(refused.value).kind, "unknown event_type "
                                                        "'example.unregistered'")  # fmt: skip


# Deeper than any decoder's recursion limit: pydantic's says invalid JSON, json.loads raises RecursionError.
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("body", [DEEP, "[" * 100_000 + '"S3Pointer"' + "]" * 100_000], ids=["plain", "S3Pointer"])
def test_a_body_nested_too_deep_to_decode_is_quarantined_as_malformed_and_the_batch_goes_on(body):
    seen, quarantine = Seen(), InMemoryDLQ()
    deep, good = sqs.record(body), sqs.record(json.dumps(hello("e-ok")))
    assert run(consumer(seen, quarantine, Payloads({})), deep, good) == set()
    assert [event.event_id for event, _ in seen.calls] == ["e-ok"]
    assert [(message.kind, message.source_message_id) for message in quarantine.sent] == [
        ("malformed_json", deep["messageId"])
    ]


def test_an_offloaded_payload_nested_too_deep_is_quarantined_as_malformed():
    seen, quarantine = Seen(), InMemoryDLQ()
    payloads = Payloads({PayloadPointer(BUCKET, "deep"): '{"payload": ' + DEEP + "}"})
    assert run(consumer(seen, quarantine, payloads), sqs.record(pointer_body(BUCKET, "deep"))) == set()
    [message] = quarantine.sent
    assert message.kind == "malformed_json"
    assert message.reason.startswith("in the payload at s3://payloads-bucket/deep: ")


def test_the_prefetch_hint_never_raises():
    assert pointer_in(sqs.record("[" * 100_000 + '"S3Pointer"' + "]" * 100_000)) is None
    odd_size = sqs.record(pointer_body(BUCKET, "k"), message_attributes={"ExtendedPayloadSize": ["not", "a", "map"]})
    assert pointer_in(odd_size) is None


def test_whatever_preparing_the_unwrapping_raises_lists_its_record_and_the_batch_answers(monkeypatch):
    def broken(raw: Any) -> None:
        raise RuntimeError("a bug in the prefetch")

    monkeypatch.setattr(envelopes, "pointer_in", broken)
    seen, quarantine = Seen(), InMemoryDLQ()
    wrapped, good = sqs.record(sns_notification(json.dumps(hello("e-sns")))), sqs.record(json.dumps(hello("e-ok")))
    assert run(consumer(seen, quarantine, Payloads({})), wrapped, good) == {wrapped["messageId"]}
    assert [event.event_id for event, _ in seen.calls] == ["e-ok"]


def test_a_payload_fetched_ahead_but_never_read_gives_its_place_to_the_next(monkeypatch):
    # GIVEN room for one fetch ahead, taken by the pointer of an SNS notification SNS never wrote (no Timestamp)
    monkeypatch.setattr(payload_store, "PREFETCH_WINDOW", 1)
    notification = json.loads(sns_notification(pointer_body(BUCKET, "first")))
    del notification["Timestamp"]
    text = json.dumps(hello("e-2"))
    payloads = Payloads({PayloadPointer(BUCKET, "first"): text, PayloadPointer(BUCKET, "second"): text})
    first, second = sqs.record(json.dumps(notification)), sqs.record(pointer_body(BUCKET, "second"))
    seen, quarantine = Seen(), InMemoryDLQ()
    submitted: list[tuple[str, str]] = []  # (key, by): "read" when fetched as its record is parsed
    submit = payload_store.submit  # type: ignore[attr-defined]

    def recorded(call: Any) -> Any:
        submitted.append((call.args[0].key, sys._getframe(1).f_code.co_name))
        return submit(call)

    monkeypatch.setattr(payload_store, "submit", recorded)
    # WHEN the batch is consumed
    assert run(consumer(seen, quarantine, payloads), first, second) == set()
    # THEN the first is poison, and the second's payload was fetched ahead once its place was given up
    assert [message.kind for message in quarantine.sent] == ["invalid_envelope"]
    assert [event.event_id for event, _ in seen.calls] == ["e-2"]
    assert submitted == [("first", "_fill"), ("second", "_fill")]


class Data(bytearray):
    """A payload's bytes, which can be watched for being let go (bytes itself has no weak references)."""


def test_a_payloads_text_is_let_go_once_its_record_is_parsed_whatever_it_became():
    # GIVEN payloads read as texts nobody else keeps: one a valid event, one refused by its model
    texts: dict[str, weakref.ref[Data]] = {}

    class Fresh(Payloads):
        def read(self, pointer: PayloadPointer, size: int | None, fetches: Any = None) -> bytes:
            text = Data(super().read(pointer, size))
            texts[pointer.key] = weakref.ref(text)
            return text  # type: ignore[return-value]  # read as bytes are

    bad = json.loads(sqs.body("hello", {}))  # no name: invalid_payload
    payloads = Fresh(
        {PayloadPointer(BUCKET, "ok"): json.dumps(hello("e-ok")), PayloadPointer(BUCKET, "bad"): json.dumps(bad)}
    )
    keys = ["ok", "bad"]
    records = [sqs.record(pointer_body(BUCKET, key)) for key in keys]
    registry = EventRegistry([Route(HelloEvent, Seen())])
    # WHEN the records are parsed, each kept as the batch keeps it until it ends
    kept = []
    for item in parse_records(records, registry, 0.0, payloads):  # type: ignore[arg-type]
        kept.append(item)
        # THEN no text outlives its record's parse: not in the fetches, the envelope or the poison
        assert texts[keys[len(kept) - 1]]() is None
    assert [type(item) for item in kept] == [type(kept[0]), Unparsed] and isinstance(kept[0], Job)


def test_a_payload_cut_off_by_the_deadline_is_a_record_never_started_not_a_failure():
    # GIVEN a payload still being fetched when the deadline comes, on its record's last receive
    release = threading.Event()

    class Body:  # S3's answer, its bytes still to come: closing it ends the read, as the batch's end does
        def close(self) -> None:
            release.set()

    class Stuck(Payloads):
        def read(self, pointer: PayloadPointer, size: int | None, fetches: Any = None) -> bytes:
            if fetches is not None:
                fetches.opened(Body())
            release.wait(5)
            return super().read(pointer, size)

    seen, quarantine = Seen(), InMemoryDLQ()
    c = consumer(seen, quarantine, Stuck({}), time_reserve_ms=5_000, timer=FakeClock())
    record = sqs.record(pointer_body(BUCKET, "slow"), receive_count=5)
    try:
        # 100 ms before the time reserve: the fetch is cut off, the timer says the records may still start
        response = c.handle(sqs.event(record), FakeContext(remaining_ms=5_100))
    finally:
        release.set()
    # THEN it is quarantined as never started, as a record the deadline kept from starting is
    assert failed_ids(response) == []
    [message] = quarantine.sent
    assert message.kind == "not_started", message.reason
