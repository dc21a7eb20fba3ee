"""Tracing on: one X-Ray subsegment per handler call, sent to a stand-in daemon on loopback (UDP)."""

from __future__ import annotations

import json
import socket

import boto3
import pytest
from moto import mock_aws

from sqs_consumer.testing import events as sqs
from sqs_consumer.testing.fakes import FakeContext
from sqs_consumer.tracing import STOP_CHECK_EVERY, SegmentEmitter, daemon_address

INVOCATION = "Root=1-6942a1b0-00112233445566778899aabb;Parent=1a2b3c4d5e6f7081;Sampled=1"
MESSAGE_TRACE = "Root=1-6942a1a0-5f3c7e0a9b1d2c3e4f506172;Parent=53995c3f42cd8ad8;Sampled=1"


@pytest.fixture
def daemon():
    """A stand-in X-Ray daemon: a UDP socket on loopback; ``received()`` reads what came."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(0.5)

    def received() -> list[bytes]:
        datagrams = []
        try:
            while True:
                datagrams.append(listener.recv(65_536))
        except TimeoutError:
            return datagrams

    received.address = "{}:{}".format(*listener.getsockname())  # type: ignore[attr-defined]
    yield received
    listener.close()


@pytest.fixture
def handler_module(aws_credentials, monkeypatch):
    from sqs_consumer import handler
    from sqs_consumer.settings import get_settings

    with mock_aws():
        client = boto3.client("sqs", region_name="us-east-1")
        monkeypatch.setenv("DLQ_URL", client.create_queue(QueueName="dlq")["QueueUrl"])
        get_settings.cache_clear()
        handler._consumer.cache_clear()
        yield handler
        get_settings.cache_clear()
        handler._consumer.cache_clear()


def batch() -> dict:
    ok = sqs.record(sqs.body("hello", {"name": "a"}, event_id="evt_ok"), trace_header=MESSAGE_TRACE)
    failing = sqs.record(sqs.body("hello", {"name": "b", "simulate": "fail"}, event_id="evt_fail"))
    poison = sqs.record("{not json")  # no handler call: no subsegment
    return sqs.event(ok, failing, poison)


def test_tracing_sends_one_subsegment_per_handler_call_under_the_invocation(daemon, handler_module, monkeypatch):
    # GIVEN tracing on, a sampled invocation, and the daemon's address as Lambda sets it
    monkeypatch.setenv("TRACING", "true")
    monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", daemon.address)
    monkeypatch.setenv("_X_AMZN_TRACE_ID", INVOCATION)

    # WHEN the entry point handles a batch with a success, a failure and a poison message
    handler_module.lambda_handler(batch(), FakeContext())

    # THEN the daemon got one datagram per handler call: the daemon's header line, then the subsegment
    datagrams = daemon()
    assert len(datagrams) == 2
    headers, documents = zip(*(datagram.split(b"\n", 1) for datagram in datagrams), strict=True)
    assert set(headers) == {b'{"format": "json", "version": 1}'}
    by_event = {doc["annotations"]["event_id"]: doc for doc in map(json.loads, documents)}
    assert set(by_event) == {"evt_ok", "evt_fail"}
    for document in by_event.values():
        assert document["type"] == "subsegment"
        assert document["trace_id"] == "1-6942a1b0-00112233445566778899aabb"
        assert document["parent_id"] == "1a2b3c4d5e6f7081"
        assert len(document["id"]) == 16 and int(document["id"], 16) >= 0
        assert document["name"] == "hello"
        assert 0 <= document["end_time"] - document["start_time"] < 60
    assert by_event["evt_ok"]["annotations"] == {"event_type": "hello", "event_id": "evt_ok",
                                                 "disposition": "succeeded",
                                                 "message_trace_id": "1-6942a1a0-5f3c7e0a9b1d2c3e4f506172"}  # fmt: skip
    assert "error" not in by_event["evt_ok"]
    assert by_event["evt_fail"]["annotations"]["disposition"] == "failed"
    assert by_event["evt_fail"]["error"] is True


@pytest.mark.parametrize(
    ("tracing", "invocation"),
    [("true", INVOCATION.replace("Sampled=1", "Sampled=0")), ("false", INVOCATION), ("true", None)],
    ids=["not-sampled", "tracing-off", "no-trace"],
)
def test_tracing_sends_nothing_unless_on_and_sampled(daemon, handler_module, monkeypatch, tracing, invocation):
    monkeypatch.setenv("TRACING", tracing)
    monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", daemon.address)
    if invocation is None:
        monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)
    else:
        monkeypatch.setenv("_X_AMZN_TRACE_ID", invocation)

    response = handler_module.lambda_handler(batch(), FakeContext())

    assert len(response["batchItemFailures"]) == 1
    assert daemon() == []


def test_tracing_without_a_daemon_loses_no_record(handler_module, monkeypatch):
    # GIVEN a daemon address nobody listens on (the ICMP refusal makes later sends fail)
    free = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    free.bind(("127.0.0.1", 0))
    address = "{}:{}".format(*free.getsockname())
    free.close()
    monkeypatch.setenv("TRACING", "true")
    monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", address)
    monkeypatch.setenv("_X_AMZN_TRACE_ID", INVOCATION)

    # WHEN two batches run, THEN each settles as without tracing
    for _ in range(2):
        response = handler_module.lambda_handler(batch(), FakeContext())
        assert len(response["batchItemFailures"]) == 1


@pytest.mark.parametrize(
    ("text", "address"),
    [(None, ("127.0.0.1", 2000)), ("169.254.79.129:2000", ("169.254.79.129", 2000)),
     ("tcp:127.0.0.1:2000 udp:127.0.0.2:2001", ("127.0.0.2", 2001))],
)  # fmt: skip
def test_daemon_address_reads_lambdas_and_the_sdks_forms(text, address):
    assert daemon_address(text) == address


def test_daemon_address_that_is_not_one_is_refused_clearly():
    with pytest.raises(ValueError, match="AWS_XRAY_DAEMON_ADDRESS is not host:port"):
        daemon_address("nowhere")


def test_sending_stops_when_the_time_kept_for_returning_comes(daemon):
    # GIVEN 250 subsegments, and a deadline that passes after the first look at the clock
    host, port = daemon.address.split(":")
    emitter = SegmentEmitter((host, int(port)), environ={})
    looks = iter([False, True])
    documents: list[dict[str, object]] = [{"name": "hello", "n": n} for n in range(250)]

    # WHEN they are sent
    sent = emitter.send(documents, stop=lambda: next(looks))

    # THEN those before the second look went out, and no more
    assert sent == STOP_CHECK_EVERY
    assert len(daemon()) == STOP_CHECK_EVERY
