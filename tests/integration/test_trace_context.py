"""One event's trace, end to end through the entry points: sqs-publish stamps it, the consumer's lines
carry it, its DLQ copy and the redriven copy keep it, sqs-dlq peek shows it.

moto drops MessageSystemAttributes on SendMessageBatch (SQS keeps them): the local server's mend
(local/moto_server.py) is applied here, and checked to be what keeps them.
"""

from __future__ import annotations

import json
import re
from typing import Any, cast

import boto3
import pytest
from moto import mock_aws

from local.event_source import to_lambda_record
from local.moto_server import keep_batch_system_attributes
from operations.dlq import main as dlq_main
from publisher.__main__ import main as publish_main
from sqs_consumer.models.trace import TraceHeader
from sqs_consumer.testing.fakes import FakeContext

PRODUCER_TRACE = "Root=1-6942a1b0-5f3c7e0a9b1d2c3e4f506172;Parent=53995c3f42cd8ad8;Sampled=1"
PRODUCER_TRACE_ID = "1-6942a1b0-5f3c7e0a9b1d2c3e4f506172"


@pytest.fixture
def sqs(aws_credentials):
    keep_batch_system_attributes()
    with mock_aws():
        client = boto3.client("sqs", region_name="us-east-1")
        dlq_url = client.create_queue(QueueName="orders-dlq")["QueueUrl"]
        url = client.create_queue(QueueName="orders")["QueueUrl"]
        yield client, url, dlq_url


def receive(client, url: str) -> list[dict]:
    return client.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"]
    ).get("Messages", [])


def lambda_event(client, url: str, messages: list[dict]) -> dict:
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return {"Records": [to_lambda_record(cast(Any, message), arn) for message in messages]}


def hello(event_id: str, simulate: str = "ok") -> str:
    return json.dumps({"event_id": event_id, "event_type": "hello", "payload": {"name": "x", "simulate": simulate}})


def test_publisher_stamps_the_producers_trace_and_says_it(sqs, monkeypatch, capsys):
    # GIVEN a producer running in a trace (as a Lambda function does)
    client, url, _ = sqs
    monkeypatch.setenv("_X_AMZN_TRACE_ID", PRODUCER_TRACE)

    # WHEN sqs-publish sends two events (one SendMessageBatch)
    assert publish_main(["--queue-url", url, hello("evt_1"), hello("evt_2")]) == 0

    # THEN both messages carry the producer's trace header, and each sent line names its trace id
    assert {m["Attributes"].get("AWSTraceHeader") for m in receive(client, url)} == {PRODUCER_TRACE}
    assert capsys.readouterr().out.count(f"trace_id={PRODUCER_TRACE_ID}") == 2


def test_publisher_without_a_trace_starts_a_valid_one_per_event(sqs, monkeypatch):
    client, url, _ = sqs
    monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)

    assert publish_main(["--queue-url", url, hello("evt_1"), hello("evt_2")]) == 0

    headers = [m["Attributes"]["AWSTraceHeader"] for m in receive(client, url)]
    parsed = [TraceHeader.parse(header) for header in headers]
    assert all(header is not None and header.parent is not None for header in parsed)
    assert all(re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0", h) for h in headers)
    assert len({header.root for header in parsed if header}) == 2


def test_publisher_refuses_a_trace_header_that_is_not_one(capsys):
    with pytest.raises(SystemExit) as stopped:
        publish_main(["--queue-url", "https://sqs/q", "--trace-header", "Root=oops", "{}"])
    assert stopped.value.code == 2
    assert "not an X-Ray trace header" in capsys.readouterr().err


def test_moto_alone_drops_the_batch_trace_header_which_the_mend_keeps(aws_credentials):
    # The reason for the mend: without it, the end-to-end test below could not fail for the right reason.
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import SQSBackend, sqs_backends

    keep_batch_system_attributes()
    system: Any = {"AWSTraceHeader": {"DataType": "String", "StringValue": PRODUCER_TRACE}}
    with mock_aws():
        client = boto3.client("sqs", region_name="us-east-1")
        url = client.create_queue(QueueName="q")["QueueUrl"]
        backend = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
        entry = {"Id": "a", "MessageBody": "moto's own", "MessageAttributes": {}, "DelaySeconds": None,
                 "MessageSystemAttributes": system}  # fmt: skip
        moto_own: Any = getattr(SQSBackend.send_message_batch, "__wrapped__")  # noqa: B009  # moto's, unmended
        moto_own(backend, "q", {"0": entry})
        client.send_message_batch(
            QueueUrl=url, Entries=[{"Id": "b", "MessageBody": "mended", "MessageSystemAttributes": system}]
        )
        headers = {m["Body"]: m["Attributes"].get("AWSTraceHeader") for m in receive(client, url)}
    assert headers == {"moto's own": None, "mended": PRODUCER_TRACE}


def test_one_event_keeps_its_trace_from_producer_to_dlq_to_redrive_and_peek(
    sqs, handler_module, monkeypatch, logs, capsys
):
    # GIVEN an event published in the producer's trace that fails on every receive, and its last receive
    client, url, dlq_url = sqs
    monkeypatch.setenv("_X_AMZN_TRACE_ID", PRODUCER_TRACE)
    assert publish_main(["--queue-url", url, hello("evt_4711", simulate="fail"), hello("evt_ok")]) == 0
    monkeypatch.delenv("_X_AMZN_TRACE_ID")
    monkeypatch.setenv("DLQ_URL", dlq_url)
    monkeypatch.setenv("MAX_RECEIVE_COUNT", "2")
    messages = receive(client, url)
    event = lambda_event(client, url, messages)

    # WHEN the entry point fails it (first receive), then quarantines it (its last)
    first = handler_module.lambda_handler(event, FakeContext())
    for record in event["Records"]:
        record["attributes"]["ApproximateReceiveCount"] = "2"
    second = handler_module.lambda_handler(event, FakeContext())

    # THEN both lines about the record carry its trace id beside its event id and message id
    failing = next(m["MessageId"] for m in messages if "evt_4711" in m["Body"])
    assert [f["itemIdentifier"] for f in first["batchItemFailures"]] == [failing]
    assert second["batchItemFailures"] == []
    about = [line for line in logs.lines if line.get("message_id") == failing]
    assert [line["message"] for line in about] == ["Record failed; it will be retried", "Record quarantined to the DLQ"]
    assert all(line["trace_id"] == PRODUCER_TRACE_ID and line["event_id"] == "evt_4711" for line in about)

    # AND its DLQ copy carries the header, which peek shows
    capsys.readouterr()
    assert dlq_main(["peek", "--queue-url", dlq_url, "--json"]) == 0
    [letter] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert letter["trace_header"] == PRODUCER_TRACE
    assert letter["trace_id"] == PRODUCER_TRACE_ID

    # AND the redrive sends it back to its queue still in its trace
    receive(client, url)  # the first receive's copies, let go of
    dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert dlq_main(["redrive", "--dlq-arn", dlq_arn, "--watch", "0"]) == 0
    redriven = [m for m in receive(client, url) if "evt_4711" in m["Body"]]
    assert [m["Attributes"].get("AWSTraceHeader") for m in redriven] == [PRODUCER_TRACE]
