"""The real Lambda entry point, with real boto3 calls against moto's SQS."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from sqs_consumer.testing import events as sqs
from sqs_consumer.testing.fakes import FakeContext
from tests.conftest import failed_ids

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def aws(aws_credentials):
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def receive_all(client, url: str) -> list[dict]:
    return client.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
    ).get("Messages", [])


def test_handler_quarantines_poison_to_the_real_dlq(aws, handler_module, monkeypatch):
    # GIVEN a DLQ and the function's environment pointing at it
    dlq_url = aws.create_queue(QueueName="orders-dlq")["QueueUrl"]
    monkeypatch.setenv("DLQ_URL", dlq_url)
    poison = sqs.record(sqs.body("document.processed", {"document_id": ""}, event_id="evt_bad"))
    good = sqs.record(sqs.body("hello"))

    # WHEN the Lambda entry point handles the batch
    response = handler_module.lambda_handler(sqs.event(poison, good), FakeContext())

    # THEN nothing is listed, and the DLQ holds the original body with its reason
    assert failed_ids(response) == []
    [dead] = receive_all(aws, dlq_url)
    assert dead["Body"] == poison["body"]
    attributes = {name: value["StringValue"] for name, value in dead["MessageAttributes"].items()}
    assert attributes["quarantine.kind"] == "invalid_payload"
    assert attributes["quarantine.source_message_id"] == poison["messageId"]
    assert attributes["quarantine.event_type"] == "document.processed"
    assert "document_id" in attributes["quarantine.reason"]


def test_handler_quarantines_to_a_fifo_dlq(aws, handler_module, monkeypatch):
    dlq_url = aws.create_queue(QueueName="orders-dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    monkeypatch.setenv("DLQ_URL", dlq_url)
    poison = sqs.record("{oops", group_id="tenant-a")

    response = handler_module.lambda_handler(sqs.event(poison), FakeContext())

    assert failed_ids(response) == []
    [dead] = receive_all(aws, dlq_url)
    assert dead["Body"] == "{oops"
    assert dead["Attributes"]["MessageGroupId"] == "tenant-a"


def test_handler_retries_poison_when_the_dlq_is_missing(aws, handler_module, monkeypatch):
    # GIVEN a DLQ URL that does not exist
    monkeypatch.setenv("DLQ_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/deleted-dlq")
    poison = sqs.record("{oops")

    response = handler_module.lambda_handler(sqs.event(poison), FakeContext())

    # THEN the record stays on the queue rather than being lost
    assert failed_ids(response) == [poison["messageId"]]


def test_handler_import_is_light():
    # boto3, botocore's client machinery and the X-Ray SDK must not load with the module (cold start).
    # (Powertools' logger imports the bare botocore package, ~1 ms, which is fine.)
    heavy = ("boto3", "botocore.session", "botocore.client", "aws_xray_sdk")
    code = f"import sys, sqs_consumer.handler; print(json.dumps([m for m in {heavy!r} if m in sys.modules]))"

    out = subprocess.run(
        [sys.executable, "-c", "import json; " + code],
        check=True,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "functions" / "consumer"), "PATH": "/usr/bin:/bin"},
    ).stdout
    assert json.loads(out) == []


def test_handler_backoff_hides_a_failed_message_for_its_delay(aws, handler_module, monkeypatch):
    # GIVEN a real queue holding a message that fails, and a 2 s backoff base
    import time

    queue_url = aws.create_queue(QueueName="orders", Attributes={"VisibilityTimeout": "300"})["QueueUrl"]
    arn = aws.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    monkeypatch.setenv("DLQ_URL", aws.create_queue(QueueName="orders-dlq")["QueueUrl"])
    monkeypatch.setenv("RETRY_BACKOFF_BASE_SECONDS", "2")
    aws.send_message(QueueUrl=queue_url, MessageBody=sqs.body("hello", {"name": "x", "simulate": "fail"}))
    [message] = aws.receive_message(QueueUrl=queue_url, AttributeNames=["All"])["Messages"]
    record = sqs.record(message["Body"], message_id=message["MessageId"], queue_arn=arn)
    record["receiptHandle"] = message["ReceiptHandle"]

    # WHEN the handler lists it
    response = handler_module.lambda_handler(sqs.event(record), FakeContext())

    # THEN it comes back after 1-2 s, not after the 300 s visibility timeout
    assert failed_ids(response) == [message["MessageId"]]
    assert aws.receive_message(QueueUrl=queue_url).get("Messages", []) == []
    time.sleep(2.2)
    assert [m["MessageId"] for m in aws.receive_message(QueueUrl=queue_url)["Messages"]] == [message["MessageId"]]
