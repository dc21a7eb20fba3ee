"""DLQ operations against moto's SQS: peek leaves messages in place; redrive moves each back to its source."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from operations.dlq import main, peek, redrive
from sqs_consumer.budget import Deadline
from sqs_consumer.quarantine import QuarantinedMessage, SqsQuarantine

DEADLINE = Deadline(lambda: 30_000, 1_000)


@pytest.fixture
def queues(aws_credentials):
    with mock_aws():
        client = boto3.client("sqs", region_name="us-east-1")
        dlq_url = client.create_queue(QueueName="orders-dlq")["QueueUrl"]
        dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        source_url = client.create_queue(
            QueueName="orders",
            Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 4})},
        )["QueueUrl"]
        yield client, source_url, dlq_url, dlq_arn


def quarantine_one(client, dlq_url: str, message_id: str, kind: str = "invalid_payload", source: str = "-") -> None:
    message = QuarantinedMessage(
        body="{}",
        kind=kind,
        reason="document_id: too short",
        source_message_id=message_id,
        source_queue_arn=source,
        receive_count=1,
        event_type="document.processed",
    )
    assert SqsQuarantine(dlq_url, client_factory=lambda _: client).send_batch([message], DEADLINE) == [None]


def visible(client, url: str) -> int:
    attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def test_peek_decodes_reasons_and_deletes_nothing(queues):
    client, _, dlq_url, _ = queues
    for i in range(13):
        quarantine_one(client, dlq_url, f"m-{i}")
    client.send_message(QueueUrl=dlq_url, MessageBody="redriven after retries")

    letters = peek(client, dlq_url, wait_seconds=0)

    assert len(letters) == 14
    quarantined = [letter for letter in letters if letter.quarantined]
    assert {letter.source_message_id for letter in quarantined} == {f"m-{i}" for i in range(13)}
    assert {(letter.kind, letter.reason) for letter in quarantined} == {("invalid_payload", "document_id: too short")}
    assert visible(client, dlq_url) == 14  # all still there, visible again


def test_cli_peek_prints_one_line_per_message(queues, capsys):
    client, _, dlq_url, _ = queues
    quarantine_one(client, dlq_url, "m-1", kind="malformed_json")

    assert main(["--region", "us-east-1", "peek", "--queue-url", dlq_url]) == 0

    out = capsys.readouterr()
    assert "m-1" in out.out and "malformed_json" in out.out
    assert "1 message(s): 1 malformed_json" in out.err


def test_cli_redrive_dry_run_moves_nothing(queues, capsys):
    client, source_url, dlq_url, dlq_arn = queues
    quarantine_one(client, dlq_url, "m-1")

    assert main(["--region", "us-east-1", "redrive", "--dlq-arn", dlq_arn, "--dry-run", "--rate", "5"]) == 0

    assert "would move 1 message(s)" in capsys.readouterr().out
    assert visible(client, dlq_url) == 1 and visible(client, source_url) == 0


def source_arn(client, url: str) -> str:
    return client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def test_redrive_returns_quarantined_copies_to_their_source_and_others_to_the_dlq_source(queues):
    # GIVEN a DLQ holding a quarantined copy (arrived by SendMessage, naming its source) and a
    # message that arrived by SQS's redrive (no attributes)
    client, source_url, dlq_url, _ = queues
    other_url = client.create_queue(QueueName="other")["QueueUrl"]
    quarantine_one(client, dlq_url, "m-1", source=source_arn(client, other_url))
    client.send_message(
        QueueUrl=dlq_url,
        MessageBody="out of retries",
        MessageAttributes={"tenant": {"DataType": "String", "StringValue": "acme"}},
    )

    # WHEN it is redriven
    report = redrive(client, dlq_url, wait_seconds=0)

    # THEN each went back to where it came from, with its own attributes only, and the DLQ is empty
    assert report.total == 2 and not report.failed
    [back] = client.receive_message(QueueUrl=other_url, MessageAttributeNames=["All"])["Messages"]
    assert back["Body"] == "{}" and "MessageAttributes" not in back
    [redriven] = client.receive_message(QueueUrl=source_url, MessageAttributeNames=["All"])["Messages"]
    assert redriven["MessageAttributes"]["tenant"]["StringValue"] == "acme"
    assert visible(client, dlq_url) == 0


def test_redrive_keeps_the_rate():
    class Clock:
        now = 0.0

        def __call__(self) -> float:
            return self.now

        def sleep(self, seconds: float) -> None:
            self.now += seconds

    clock = Clock()
    with mock_aws():
        client = boto3.client("sqs", region_name="us-east-1")
        dlq_url = client.create_queue(QueueName="d")["QueueUrl"]
        src = client.create_queue(QueueName="s")["QueueUrl"]
        for i in range(20):
            quarantine_one(client, dlq_url, f"m-{i}", source=source_arn(client, src))
        report = redrive(client, dlq_url, rate=5, wait_seconds=0, clock=clock, sleep=clock.sleep)
    assert report.total == 20
    assert clock.now == pytest.approx(4.0)


def test_redrive_dry_run_and_unknown_source_move_nothing(queues, capsys):
    client, source_url, dlq_url, dlq_arn = queues
    quarantine_one(client, dlq_url, "m-1")
    lone = client.create_queue(QueueName="lone-dlq")["QueueUrl"]
    client.send_message(QueueUrl=lone, MessageBody="from nowhere")

    assert main(["redrive", "--dlq-arn", dlq_arn, "--dry-run", "--rate", "5", "--region", "us-east-1"]) == 0
    report = redrive(client, lone, wait_seconds=0)

    assert "dry run: would move 1 message(s)" in capsys.readouterr().out
    assert visible(client, dlq_url) == 1 and visible(client, source_url) == 0
    assert report.total == 0 and report.no_source == 1
    assert visible(client, lone) == 1


def test_cli_redrive_moves_quarantined_messages(queues, capsys):
    client, source_url, dlq_url, dlq_arn = queues
    for i in range(3):
        quarantine_one(client, dlq_url, f"m-{i}", source=source_arn(client, source_url))

    assert main(["--region", "us-east-1", "redrive", "--dlq-arn", dlq_arn, "--rate", "100"]) == 0

    assert "moved 3 message(s)" in capsys.readouterr().out
    assert visible(client, source_url) == 3 and visible(client, dlq_url) == 0


def test_cli_status_reports_the_count_and_says_when_move_tasks_are_unavailable(queues, capsys):
    client, _, dlq_url, dlq_arn = queues
    quarantine_one(client, dlq_url, "m-1")

    assert main(["status", "--dlq-arn", dlq_arn, "--region", "us-east-1"]) == 0

    out = capsys.readouterr().out
    assert "about 1 visible" in out
    assert "move tasks" in out


def test_cli_a_wrong_queue_is_one_line_with_what_to_do(queues, capsys):
    assert main(["peek", "--queue-url", "https://sqs.us-east-1.amazonaws.com/123456789012/nope",
                 "--region", "us-east-1"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert "check the queue URL" in err


def test_peek_reports_the_queue_count_beside_what_it_saw(queues, capsys):
    client, _, dlq_url, _ = queues
    quarantine_one(client, dlq_url, "m-1")
    assert main(["peek", "--queue-url", dlq_url, "--region", "us-east-1", "--max", "1"]) == 0
    assert "the queue holds about 1 visible" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [[], ["peek"], ["peek", "--queue-url", "u", "--max", "0"],
                                  ["redrive", "--dlq-arn", "a", "--rate", "0"], ["bogus"]])  # fmt: skip
def test_cli_bad_arguments_print_usage_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage:" in capsys.readouterr().err
