"""Offloaded payloads within the function's memory and its batch's time: real sizes, one parse, no read
past the batch, pointers recognised one way, buckets botocore refuses (payload_store.py, envelopes.py)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from sqs_consumer import payload_store
from sqs_consumer.budget import Deadline
from sqs_consumer.envelopes import pointer_in
from sqs_consumer.errors import DeadlineReachedError, PoisonMessageError
from sqs_consumer.payload_store import (
    PARSE_BYTES_PER_PAYLOAD_BYTE,
    BatchPayloads,
    MemoryShortError,
    S3Payloads,
    max_payload_for,
    memory_needed_mb,
)
from sqs_consumer.payloads import PayloadPointer, pointer_from
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.routes import REGISTRY
from sqs_consumer.testing import events as sqs
from sqs_consumer.testing.events import pointer_body, size_attribute, sns_notification
from sqs_consumer.testing.fakes import FakeContext, InMemoryDLQ
from tests.conftest import failed_ids
from tests.support import botocore_clients

BUCKET = "payloads-bucket"
MAX_BYTES = 1_048_576


def document(event_id: str, items: int = 10) -> bytes:
    lines = [{"sku": f"SKU-{index:06d}", "quantity": 1} for index in range(items)]
    event = {"event_id": event_id, "event_type": "document.processed",
             "payload": {"document_id": f"doc-{event_id}", "line_items": lines}}  # fmt: skip
    return json.dumps(event).encode()


class Body:
    """A streamed S3 body: ``chunk_seconds`` per read, counting the reads under way; close() ends them."""

    def __init__(self, client: Client, size: int) -> None:
        self.client, self.left = client, size
        self._closed = threading.Event()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def read(self, amount: int | None = None) -> bytes:
        with self.client.lock:
            self.client.reading += 1
        try:
            self._closed.wait(self.client.chunk_seconds)  # a socket closed under a read ends it
            if self.closed:
                raise ValueError("I/O operation on closed file")
            taken = min(self.left, amount or self.left)
            self.left -= taken
            return b" " * taken
        finally:
            with self.client.lock:
                self.client.reading -= 1

    def close(self) -> None:
        self._closed.set()


class Client:
    """An S3 client whose objects are ``sizes`` (by key), streamed slowly; what it served is recorded."""

    def __init__(self, sizes: dict[str, int], chunk_seconds: float = 0.0) -> None:
        self.sizes, self.chunk_seconds = sizes, chunk_seconds
        self.lock = threading.Lock()
        self.reading = 0
        self.gets: list[str] = []
        self.bodies: list[Body] = []

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # botocore's names
        self.gets.append(Key)
        body = Body(self, self.sizes[Key])
        self.bodies.append(body)
        return {"Body": body, "ContentLength": self.sizes[Key]}


def store(client: Client, max_bytes: int = MAX_BYTES, **kwargs: Any) -> S3Payloads:
    return S3Payloads(max_bytes, client_factory=lambda endpoint: client, **kwargs)  # type: ignore[arg-type,return-value]


class Countdown:
    """A Lambda context whose remaining time runs with the clock."""

    def __init__(self, remaining_ms: int) -> None:
        self._end = time.monotonic() * 1000 + remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return int(self._end - time.monotonic() * 1000)


# --- real sizes, never the announced one alone


def test_an_understated_size_attribute_does_not_let_more_be_fetched_ahead_than_the_budget():
    # GIVEN payloads of 1 MiB announced as 1 KB, and a budget of three of the largest payloads
    client = Client({f"k{index}": MAX_BYTES for index in range(12)}, chunk_seconds=0.01)
    fetches = BatchPayloads(store(client), Deadline(lambda: 60_000, 0), 3 * (MAX_BYTES + 1))
    wanted = [(f"m{index}", PayloadPointer(BUCKET, f"k{index}"), 1_000) for index in range(12)]
    most = 0

    def watch() -> None:
        nonlocal most
        while not done.is_set():
            most = max(most, len(client.gets) - parsed)
            time.sleep(0.001)

    done, parsed = threading.Event(), 0
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        fetches.prefetch(wanted)
        for message_id, pointer, size in wanted:
            assert len(fetches.read(message_id, pointer, size)) == MAX_BYTES
            fetches.passed(message_id)
            parsed += 1
    finally:
        done.set()
        watcher.join()
    # THEN never more than three were under way or held at once (the one being parsed counted in)
    assert most <= 3


# --- no read past the batch, none after its deadline, a given-up read keeps its place until it ends


def test_after_the_deadline_nothing_starts_and_nothing_outlives_the_batch():
    # GIVEN 20 offloaded payloads that take long to stream, and a batch whose deadline comes in 300 ms
    keys = [f"k{index}" for index in range(20)]
    client = Client(dict.fromkeys(keys, MAX_BYTES), chunk_seconds=0.1)
    records = [sqs.record(pointer_body(BUCKET, key), message_attributes=size_attribute(1_000)) for key in keys]
    consumer = BatchConsumer(REGISTRY, InMemoryDLQ(), payloads=store(client, prefetch_bytes=64 * MAX_BYTES),
                             time_reserve_ms=1_000, max_receive_count=5)  # fmt: skip
    # WHEN the batch is handled through its deadline
    response = consumer.handle(sqs.event(*records), Countdown(1_300))
    gets_at_return = len(client.gets)
    # THEN each record was listed (none failed the batch), no read is under way once it returned, every
    # body it opened is closed, and no GET starts afterwards
    assert failed_ids(response) == [record["messageId"] for record in records]
    assert client.reading == 0
    assert all(body.closed for body in client.bodies)
    time.sleep(0.3)
    assert len(client.gets) == gets_at_return
    # ...and no more than the window was ever started: a read given up on kept its place until it ended
    assert gets_at_return <= payload_store.PREFETCH_WINDOW


def test_a_read_given_up_on_keeps_its_place_until_its_get_ends():
    client = Client({"slow": MAX_BYTES, "next": 10}, chunk_seconds=0.2)
    fetches = BatchPayloads(store(client), Deadline(lambda: 60_000, 0), MAX_BYTES + 1)
    wanted = [("a", PayloadPointer(BUCKET, "slow"), None), ("b", PayloadPointer(BUCKET, "next"), None)]
    fetches.prefetch(wanted)
    time.sleep(0.05)
    fetches.passed("a")  # parsed without its payload (e.g. poison in its envelope): the read runs on
    assert client.gets == ["slow"] and fetches.running == 1  # "next" waits: the budget is still held
    fetches.close()
    assert client.reading == 0 and client.gets == ["slow"]


# --- every read within the batch's deadline, pointers recognised the parse's way


def test_a_pointer_whose_class_name_is_written_with_escapes_is_recognised_for_the_prefetch():
    escaped = pointer_body(BUCKET, "k").replace("S3Pointer", "\\u0053\\u0033Pointer")
    assert json.loads(escaped)[0].endswith("S3Pointer")
    assert pointer_in(sqs.record(escaped)) == (PayloadPointer(BUCKET, "k"), None)
    in_sns = sqs.record(sns_notification(escaped))
    assert pointer_in(in_sns) == (PayloadPointer(BUCKET, "k"), None)


def test_a_payload_not_fetched_ahead_is_read_within_the_deadline_too():
    # GIVEN a bound over the prefetch budget (MAX_PAYLOAD_BYTES above a quarter of memory): read at parse time
    client = Client({"k": 10 * 1024}, chunk_seconds=1.0)
    fetches = BatchPayloads(store(client), Deadline(lambda: 700, 600), MAX_BYTES // 2)  # 100 ms to read
    pointer = PayloadPointer(BUCKET, "k")
    fetches.prefetch([("m", pointer, None)])
    assert client.gets == []
    # THEN its read gives up at the deadline, and stops with the batch
    with pytest.raises(DeadlineReachedError):
        fetches.read("m", pointer, None)
    fetches.close()
    assert client.reading == 0


# --- buckets botocore refuses: invalid at once, never retried


@pytest.mark.parametrize("bucket", [
    "bad name!",
    "arn:aws:sns:us-east-1:123456789012:topic",
    "arn:aws:s3::123456789012:accesspoint/mfzwi23gnjvgw.mrap",
])  # fmt: skip
def test_a_pointer_to_a_bucket_botocore_refuses_is_an_invalid_envelope_on_its_first_receive(bucket):
    with pytest.raises(ValueError, match="s3BucketName"):
        pointer_from(["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": bucket, "s3Key": "k"}])
    quarantine = InMemoryDLQ()
    body = json.dumps(["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": bucket, "s3Key": "k"}])
    record = sqs.record(body, receive_count=1)
    consumer = BatchConsumer(REGISTRY, quarantine, payloads=store(Client({})), max_receive_count=5)
    assert failed_ids(consumer.handle(sqs.event(record), FakeContext())) == []
    assert [message.kind for message in quarantine.sent] == ["invalid_envelope"]


def test_botocores_own_refusal_of_a_bucket_is_an_invalid_envelope_not_an_error_to_retry():
    client = botocore_clients.client("s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    payloads = S3Payloads(MAX_BYTES, client_factory=lambda endpoint: client)  # type: ignore[arg-type,return-value]
    with pytest.raises(PoisonMessageError) as raised:
        payloads.read(PayloadPointer("arn:aws:s3::123456789012:accesspoint/mfzwi23gnjvgw.mrap", "k"), None)
    assert raised.value.kind == "invalid_envelope"


# --- one parse, a root that is not an object refused before it


def test_a_large_payload_whose_root_is_not_an_object_is_refused_without_being_parsed(monkeypatch):
    decoded: list[int] = []
    loads = json.loads

    def counted(text: Any) -> Any:
        decoded.append(len(text))
        return loads(text)

    monkeypatch.setattr(json, "loads", counted)
    array = b"[" + b",".join([b"[]"] * 100_000) + b"]"
    client = Client({})
    client.get_object = lambda Bucket, Key: {"Body": FixedBody(array), "ContentLength": len(array)}  # type: ignore[method-assign]
    quarantine = InMemoryDLQ()
    record = sqs.record(pointer_body(BUCKET, "array"))
    BatchConsumer(REGISTRY, quarantine, payloads=store(client)).handle(sqs.event(record), FakeContext())
    assert [message.kind for message in quarantine.sent] == ["invalid_envelope"]
    assert "not a JSON object" in quarantine.sent[0].reason
    assert all(size < 1_000 for size in decoded)  # the pointer body's hint only, never the payload


class FixedBody:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, amount: int | None = None) -> bytes:
        chunk, self.data = self.data[: amount or len(self.data)], self.data[amount or len(self.data) :]
        return chunk

    def close(self) -> None:
        pass


def test_a_body_that_fails_the_fast_path_is_unwrapped_without_a_second_parse(monkeypatch):
    event = json.dumps({"event_id": "e1", "event_type": "hello", "payload": {"name": "x"}})
    body = sns_notification(event) + " " * 5_000  # a body the hint never parses (no pointer can be in it)
    decoded: list[str] = []
    loads = json.loads

    def kept(text: Any) -> Any:
        decoded.append(text)
        return loads(text)

    monkeypatch.setattr(json, "loads", kept)
    quarantine = InMemoryDLQ()
    response = BatchConsumer(REGISTRY, quarantine).handle(sqs.event(sqs.record(body)), FakeContext())
    assert failed_ids(response) == [] and quarantine.sent == []
    assert body not in decoded


def test_an_offloaded_payload_is_decoded_once():
    client = Client({})
    data = document("e-1", items=1_000)
    client.get_object = lambda Bucket, Key: {"Body": FixedBody(data), "ContentLength": len(data)}  # type: ignore[method-assign]
    registry_calls: list[str] = []
    validate_json = REGISTRY.validate_json

    def spy(text: str | bytes) -> Any:
        registry_calls.append("json")
        return validate_json(text)

    quarantine = InMemoryDLQ()
    consumer = BatchConsumer(REGISTRY, quarantine, payloads=store(client))
    consumer._registry = type(REGISTRY)([*REGISTRY.routes.values()])  # a registry to spy on
    consumer._registry.__dict__["validate_json"] = spy
    response = consumer.handle(sqs.event(sqs.record(pointer_body(BUCKET, "doc"))), FakeContext())
    assert failed_ids(response) == [] and quarantine.sent == []
    assert registry_calls == ["json"]  # the pointer body's fast path; the payload went through json.loads only


# --- memory: the stack's rule and the function's admission


def test_the_largest_payload_follows_from_the_memory_and_the_measured_parse_cost():
    for memory_mb in (256, 512, 1_024, 10_240):
        largest = max_payload_for(memory_mb)
        assert memory_needed_mb(largest) == memory_mb or max_payload_for(memory_mb - 1) == largest
        assert memory_needed_mb(largest + 1) > memory_mb
    assert max_payload_for(256) >= 2 * 1_048_576  # the default bound fits the default memory
    assert max_payload_for(256) < 32 * 1_048_576  # the former default did not


def test_a_further_payload_is_not_parsed_when_the_memory_held_leaves_no_room_for_it(monkeypatch):
    client = Client({"a": 1_000, "b": 1_000})
    fetches = BatchPayloads(store(client, memory_mb=256), Deadline(lambda: 60_000, 0), 8 * MAX_BYTES)
    monkeypatch.setattr(payload_store, "resident_bytes", lambda: 256 * 1_048_576 - PARSE_BYTES_PER_PAYLOAD_BYTE * 999)
    a, b = PayloadPointer(BUCKET, "a"), PayloadPointer(BUCKET, "b")
    assert len(fetches.read("a", a, None)) == 1_000  # the first of a batch: the stack keeps room for it
    fetches.passed("a")
    with pytest.raises(MemoryShortError, match="comes back in another"):
        fetches.read("b", b, None)
