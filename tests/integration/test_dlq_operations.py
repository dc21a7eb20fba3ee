"""DLQ operations against moto's SQS: peek leaves messages in place; redrive moves them back."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from operations.dlq import main, peek, redrive_status, start_redrive
from sqs_consumer.quarantine import QuarantinedMessage, SqsQuarantine


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


def quarantine_one(client, dlq_url: str, message_id: str, kind: str = "invalid_payload") -> None:
    SqsQuarantine(dlq_url, client_factory=lambda _: client).send(
        QuarantinedMessage(
            body="{}",
            kind=kind,
            reason="document_id: too short",
            source_message_id=message_id,
            source_queue_arn="arn:aws:sqs:us-east-1:123456789012:orders",
            receive_count=1,
            event_type="document.processed",
        )
    )


def visible(client, url: str) -> int:
    attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def test_peek_decodes_reasons_and_deletes_nothing(queues):
    client, _, dlq_url, _ = queues
    for i in range(13):
        quarantine_one(client, dlq_url, f"m-{i}")
    client.send_message(QueueUrl=dlq_url, MessageBody="redriven after retries")

    letters = peek(client, dlq_url)

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


class MoveTaskClient:
    """moto has no StartMessageMoveTask: this records the calls instead."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def start_message_move_task(self, **params):
        self.calls.append(("start", params))
        return {"TaskHandle": "task-1"}

    def list_message_move_tasks(self, **params):
        self.calls.append(("list", params))
        return {
            "Results": [{"Status": "RUNNING", "SourceArn": params["SourceArn"], "ApproximateNumberOfMessagesMoved": 3}]
        }


def test_start_redrive_passes_destination_and_rate():
    client = MoveTaskClient()
    assert start_redrive(client, "arn:dlq", "arn:src", 5) == "task-1"  # type: ignore[arg-type]
    assert client.calls == [
        ("start", {"SourceArn": "arn:dlq", "DestinationArn": "arn:src", "MaxNumberOfMessagesPerSecond": 5})
    ]


def test_start_redrive_defaults_to_each_source_queue():
    client = MoveTaskClient()
    start_redrive(client, "arn:dlq", None, None)  # type: ignore[arg-type]
    assert client.calls == [("start", {"SourceArn": "arn:dlq"})]


def test_redrive_status_lists_the_tasks_of_the_dlq():
    client = MoveTaskClient()
    [task] = redrive_status(client, "arn:dlq")  # type: ignore[arg-type]
    assert task["Status"] == "RUNNING"
    assert client.calls == [("list", {"SourceArn": "arn:dlq", "MaxResults": 10})]


@pytest.mark.parametrize("argv", [[], ["peek"], ["peek", "--queue-url", "u", "--max", "0"],
                                  ["redrive", "--dlq-arn", "a", "--rate", "0"], ["bogus"]])  # fmt: skip
def test_cli_bad_arguments_print_usage_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage:" in capsys.readouterr().err
