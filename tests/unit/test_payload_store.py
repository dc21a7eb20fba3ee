"""Offloaded payloads read from S3 against a strict double (botocore's Stubber): the errors moto never gives."""

from __future__ import annotations

import io
import sys
import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError
from botocore.response import StreamingBody
from botocore.stub import Stubber

from sqs_consumer import payload_store
from sqs_consumer.budget import Deadline
from sqs_consumer.errors import DeadlineReachedError, PoisonMessageError
from sqs_consumer.payload_store import PREFETCH_WINDOW, BatchPayloads, S3Payloads, decoded, prefetch_budget
from sqs_consumer.payloads import PayloadPointer
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.routes import REGISTRY
from sqs_consumer.testing import events as sqs
from sqs_consumer.testing.events import pointer_body, size_attribute
from sqs_consumer.testing.fakes import FakeContext, InMemoryDLQ
from tests.conftest import failed_ids
from tests.support import botocore_clients

POINTER = PayloadPointer("payloads-bucket", "orders/2026/big.json")
MAX_BYTES = 2 * 1_048_576


class CountingBody(io.BytesIO):
    """A response body that records how much was read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.taken = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.taken += len(chunk)
        return chunk


def stubbed() -> tuple[S3Payloads, Stubber]:
    client = botocore_clients.client("s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    stubber = Stubber(client)
    stubber.activate()
    return S3Payloads(MAX_BYTES, client_factory=lambda endpoint: client), stubber  # type: ignore[arg-type,return-value]


def expect_get(stubber: Stubber, data: bytes, length: int | None = None) -> CountingBody:
    body = CountingBody(data)
    response: dict[str, Any] = {"Body": StreamingBody(body, len(data))}
    if length is not None:
        response["ContentLength"] = length
    stubber.add_response("get_object", response, {"Bucket": POINTER.bucket, "Key": POINTER.key})
    return body


def expect_error(stubber: Stubber, code: str, status: int) -> None:
    stubber.add_client_error("get_object", service_error_code=code, http_status_code=status,
                             expected_params={"Bucket": POINTER.bucket, "Key": POINTER.key})  # fmt: skip


def test_a_payload_is_read_from_the_bucket_and_key_the_pointer_names():
    store, stubber = stubbed()
    expect_get(stubber, '{"a": "é"}'.encode(), length=11)
    assert store.read(POINTER, 11) == '{"a": "é"}'.encode()
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize(("code", "status", "kind"), [
    ("NoSuchKey", 404, "payload_missing"),
    ("NoSuchBucket", 404, "payload_missing"),
    ("AccessDenied", 403, "payload_unreadable"),
    ("InvalidObjectState", 403, "payload_unreadable"),
])  # fmt: skip
def test_an_object_that_is_gone_or_forbidden_is_poison_naming_bucket_and_key(code, status, kind):
    store, stubber = stubbed()
    expect_error(stubber, code, status)
    with pytest.raises(PoisonMessageError) as raised:
        store.read(POINTER, None)
    assert raised.value.kind == kind
    assert code in raised.value.reason
    assert "'payloads-bucket'" in raised.value.reason and "'orders/2026/big.json'" in raised.value.reason


@pytest.mark.parametrize(("code", "status"), [("SlowDown", 503), ("InternalError", 500), ("ServiceUnavailable", 503),
                                              ("RequestTimeout", 400), ("ExpiredToken", 400)])  # fmt: skip
def test_throttling_and_server_errors_are_raised_to_be_retried(code, status):
    store, stubber = stubbed()
    expect_error(stubber, code, status)
    with pytest.raises(ClientError):
        store.read(POINTER, None)


def test_a_size_attribute_over_the_bound_is_refused_before_any_get():
    store, stubber = stubbed()  # no response queued: a GET would fail the test
    with pytest.raises(PoisonMessageError) as raised:
        store.read(POINTER, MAX_BYTES + 1)
    assert raised.value.kind == "payload_too_large" and "size attribute" in raised.value.reason
    stubber.assert_no_pending_responses()


def test_a_content_length_over_the_bound_is_refused_without_reading_the_body():
    store, stubber = stubbed()
    body = expect_get(stubber, b"x" * (MAX_BYTES + 10), length=MAX_BYTES + 10)
    with pytest.raises(PoisonMessageError) as raised:
        store.read(POINTER, 100)  # the attribute understated the size
    assert raised.value.kind == "payload_too_large" and "S3 says" in raised.value.reason
    assert body.taken == 0 and body.closed


def test_a_body_longer_than_announced_is_never_read_past_the_bound():
    store, stubber = stubbed()
    body = expect_get(stubber, b"x" * (MAX_BYTES * 2))  # no ContentLength
    with pytest.raises(PoisonMessageError) as raised:
        store.read(POINTER, None)
    assert raised.value.kind == "payload_too_large"
    assert body.taken == MAX_BYTES + 1


def test_a_payload_that_is_not_utf8_is_poison():
    with pytest.raises(PoisonMessageError) as raised:
        decoded(POINTER, b'{"name": "\xff"}')
    assert raised.value.kind == "payload_not_utf8"


def test_a_connection_error_is_raised_to_be_retried():
    def broken(endpoint: str | None) -> Any:
        class Client:
            def get_object(self, **kwargs: Any) -> Any:
                raise ConnectTimeoutError(endpoint_url="https://s3.amazonaws.com")

        return Client()

    with pytest.raises(ConnectTimeoutError):
        S3Payloads(MAX_BYTES, client_factory=broken).read(POINTER, None)


@pytest.mark.parametrize(("code", "status", "listed", "kind"), [
    ("AccessDenied", 403, False, "payload_unreadable"),
    ("NoSuchKey", 404, False, "payload_missing"),
    ("SlowDown", 503, True, None),
])  # fmt: skip
def test_through_the_consumer_a_refused_payload_is_quarantined_with_its_pointer_and_a_throttled_one_listed(
    code, status, listed, kind
):
    store, stubber = stubbed()
    expect_error(stubber, code, status)
    quarantine = InMemoryDLQ()
    record = sqs.record(pointer_body(POINTER.bucket, POINTER.key), message_attributes=size_attribute(5_000))
    response = BatchConsumer(REGISTRY, quarantine, payloads=store).handle(sqs.event(record), FakeContext())
    assert failed_ids(response) == ([record["messageId"]] if listed else [])
    assert [(message.kind, message.body) for message in quarantine.sent] == (
        [] if listed else [(kind, pointer_body(POINTER.bucket, POINTER.key))])  # fmt: skip
    if not listed:
        assert quarantine.sent[0].original_attributes == size_attribute(5_000)


@pytest.fixture
def inline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys whose read started only when their record was parsed (not fetched ahead)."""
    started: list[str] = []
    submit = payload_store.submit  # type: ignore[attr-defined]

    def recorded(call: Any) -> Any:
        if sys._getframe(1).f_code.co_name == "read":  # BatchPayloads.read, not its prefetch
            started.append(call.args[0].key)
        return submit(call)

    monkeypatch.setattr(payload_store, "submit", recorded)
    return started


class SlowStore:
    """Reads take ``seconds``; records how many overlapped, and which ran on the caller's thread (not ahead)."""

    def __init__(self, seconds: float, max_bytes: int = MAX_BYTES) -> None:
        self.seconds = seconds
        self.max_bytes = max_bytes
        self.memory_bytes: int | None = None
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()

    def read(self, pointer: PayloadPointer, size: int | None, fetches: Any = None) -> bytes:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(self.seconds)
        with self.lock:
            self.running -= 1
        return pointer.key.encode()


def test_a_batchs_payloads_are_fetched_ahead_concurrently_within_the_window():
    store = SlowStore(0.1)
    fetches = BatchPayloads(store, Deadline(lambda: 60_000, 0), 100 * MAX_BYTES)  # type: ignore[arg-type]
    wanted = [(f"m{index}", PayloadPointer("b", f"k{index}"), None) for index in range(20)]
    started = time.perf_counter()
    fetches.prefetch(wanted)
    assert [fetches.read(message_id, pointer, None) for message_id, pointer, _ in wanted] == [
        f"k{i}".encode() for i in range(20)
    ]
    elapsed = time.perf_counter() - started
    assert store.most == PREFETCH_WINDOW
    assert elapsed < 20 * 0.1 / 2  # one at a time would take 2 s


def test_a_payload_not_fetched_by_the_deadline_is_a_deadline_error():
    fetches = BatchPayloads(SlowStore(0.5), Deadline(lambda: 50, 0), MAX_BYTES)  # type: ignore[arg-type]
    pointer = PayloadPointer("b", "k")
    fetches.prefetch([("m", pointer, None)])
    with pytest.raises(DeadlineReachedError):
        fetches.read("m", pointer, None)


def parse_in_order(fetches: BatchPayloads, wanted: list[tuple[str, PayloadPointer, int | None]]) -> list[bytes]:
    """Each payload read, then its record's parse over, as the parse stage does."""
    texts = []
    for message_id, pointer, size in wanted:
        texts.append(fetches.read(message_id, pointer, size))
        fetches.passed(message_id)
    return texts


@pytest.mark.parametrize("announced", [1_000, MAX_BYTES // 3, None], ids=["understated", "announced", "none"])
def test_the_payloads_fetched_ahead_stay_within_the_byte_budget_whatever_size_they_announce(announced, inline):
    # GIVEN a budget of three of the largest payloads, the one being parsed counted in
    store = SlowStore(0.05)
    fetches = BatchPayloads(store, Deadline(lambda: 60_000, 0), 3 * (MAX_BYTES + 1))  # type: ignore[arg-type]
    wanted = [(f"m{index}", PayloadPointer("b", f"k{index}"), announced) for index in range(12)]
    # WHEN they are read in order
    fetches.prefetch(wanted)
    assert parse_in_order(fetches, wanted) == [f"k{index}".encode() for index in range(12)]
    # THEN each counted as the most a read may hold (an announced size is only the producer's word): no
    # more than three held at once, all but the first of each turn fetched ahead
    assert store.most == 3
    assert inline == []


def test_a_payload_larger_than_the_budget_is_fetched_when_its_record_is_parsed_not_ahead(inline):
    store = SlowStore(0.01)
    fetches = BatchPayloads(store, Deadline(lambda: 60_000, 0), MAX_BYTES // 2)  # type: ignore[arg-type]
    wanted = [("small", PayloadPointer("b", "small"), 100), ("unannounced", PayloadPointer("b", "big"), None),
              ("announced", PayloadPointer("b", "big2"), MAX_BYTES)]  # fmt: skip
    fetches.prefetch(wanted)
    assert parse_in_order(fetches, wanted) == [b"small", b"big", b"big2"]
    assert inline == ["small", "big", "big2"]


def test_the_budget_is_a_quarter_of_the_functions_memory_or_of_lambdas_default_without_it():
    assert prefetch_budget({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256"}) == 64 * 1_048_576
    assert prefetch_budget({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "10240"}) == 2_560 * 1_048_576
    assert prefetch_budget({}) == prefetch_budget({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "many"}) == 32 * 1_048_576
    assert S3Payloads(MAX_BYTES, prefetch_bytes=5).prefetch_bytes == 5
