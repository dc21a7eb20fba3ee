"""DLQ operations against moto's SQS: peek leaves messages in place; redrive moves each back to its source."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from operations.dlq import main, move_tasks_unavailable, peek
from operations.redrive import CAME_BACK, SKIPPED, KindFilter, redrive
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


def quarantine_one(client, dlq_url: str, message_id: str, kind: str = "retries_exhausted", source: str = "-") -> None:
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
    assert {(letter.kind, letter.reason) for letter in quarantined} == {("retries_exhausted", "document_id: too short")}
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
    report = redrive(client, dlq_url, wait_seconds=0, watch_seconds=0)

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
        report = redrive(client, dlq_url, rate=5, wait_seconds=0, watch_seconds=0, clock=clock, sleep=clock.sleep)
    assert report.total == 20
    assert clock.now == pytest.approx(4.0)


def test_redrive_dry_run_and_unknown_source_move_nothing(queues, capsys):
    client, source_url, dlq_url, dlq_arn = queues
    quarantine_one(client, dlq_url, "m-1")
    lone = client.create_queue(QueueName="lone-dlq")["QueueUrl"]
    client.send_message(QueueUrl=lone, MessageBody="from nowhere")

    assert main(["redrive", "--dlq-arn", dlq_arn, "--dry-run", "--rate", "5", "--region", "us-east-1"]) == 0
    report = redrive(client, lone, wait_seconds=0, watch_seconds=0)

    assert "dry run: would move 1 message(s)" in capsys.readouterr().out
    assert visible(client, dlq_url) == 1 and visible(client, source_url) == 0
    assert report.total == 0 and report.count("no source queue") == 1
    assert visible(client, lone) == 1


def test_cli_redrive_moves_quarantined_messages(queues, capsys):
    client, source_url, dlq_url, dlq_arn = queues
    for i in range(3):
        quarantine_one(client, dlq_url, f"m-{i}", source=source_arn(client, source_url))

    assert main(["--region", "us-east-1", "redrive", "--dlq-arn", dlq_arn, "--rate", "100", "--watch", "0"]) == 0

    assert "moved 3 message(s)" in capsys.readouterr().out
    assert visible(client, source_url) == 3 and visible(client, dlq_url) == 0


def test_cli_status_reports_the_count_and_says_when_move_tasks_are_unavailable(queues, capsys):
    client, _, dlq_url, dlq_arn = queues
    quarantine_one(client, dlq_url, "m-1")

    assert main(["status", "--dlq-arn", dlq_arn, "--region", "us-east-1"]) == 0

    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert "about 1 visible" in lines[0]
    assert lines[1].startswith("SQS move tasks: not available from this endpoint")


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
                                  ["redrive", "--dlq-arn", "a", "--rate", "0"], ["bogus"],
                                  ["redrive", "--dlq-arn", "arn:aws:sqs:us-east-1:1:d", "--kind", "typo"],
                                  ["redrive", "--dlq-arn", "arn:aws:sqs:us-east-1:1:d", "--kind", "not_started",
                                   "--include-poison"],
                                  ["redrive", "--dlq-arn", "arn:aws:sqs:us-east-1:1:d", "--watch", "-1"]])  # fmt: skip
def test_cli_bad_arguments_are_one_line_first_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("sqs-dlq")
    assert ": error: " in line
    assert line.endswith("--help)")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.on_sleep = lambda: None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.on_sleep()


def consumer_that_quarantines_again(client, source_url: str, dlq_url: str):
    """The consumer with its cause unfixed: each message on the source queue is quarantined again."""

    def run() -> None:
        for message in client.receive_message(QueueUrl=source_url, MaxNumberOfMessages=10).get("Messages", []):
            quarantine_one(client, dlq_url, message["MessageId"], kind="invalid_payload",
                           source=source_arn(client, source_url))  # fmt: skip
            client.delete_message(QueueUrl=source_url, ReceiptHandle=message["ReceiptHandle"])

    return run


def test_redrive_stops_at_its_snapshot_and_reports_what_came_straight_back(queues):
    # GIVEN three poison messages in the DLQ and a consumer whose cause is not fixed
    client, source_url, dlq_url, _ = queues
    for i in range(3):
        quarantine_one(client, dlq_url, f"m-{i}", kind="invalid_payload", source=source_arn(client, source_url))
    clock = FakeClock()
    clock.on_sleep = consumer_that_quarantines_again(client, source_url, dlq_url)

    # WHEN they are redriven anyway
    report = redrive(client, dlq_url, kinds=KindFilter(include_poison=True), rate=10, wait_seconds=0,
                     watch_seconds=2, clock=clock, sleep=clock.sleep)  # fmt: skip

    # THEN it moved the three once, saw each come straight back, and left them in the DLQ
    assert report.total == 3
    assert report.kinds(CAME_BACK) == {"invalid_payload": 3}
    assert visible(client, dlq_url) == 3 and visible(client, source_url) == 0


def test_redrive_skips_poison_kinds_unless_asked(queues):
    client, source_url, dlq_url, _ = queues
    source = source_arn(client, source_url)
    for i, kind in enumerate(["malformed_json", "invalid_envelope", "invalid_payload", "unknown_event_type",
                              "reused_event_id", "non_retryable", "retries_exhausted", "not_started"]):  # fmt: skip
        quarantine_one(client, dlq_url, f"m-{i}", kind=kind, source=source)

    report = redrive(client, dlq_url, wait_seconds=0, watch_seconds=0)

    assert report.kinds(SKIPPED) == dict.fromkeys(
        ["malformed_json", "invalid_envelope", "invalid_payload", "unknown_event_type", "reused_event_id"], 1
    )
    assert report.total == 3
    assert visible(client, dlq_url) == 5 and visible(client, source_url) == 3


def test_redrive_moves_only_the_chosen_kinds(queues):
    client, source_url, dlq_url, _ = queues
    source = source_arn(client, source_url)
    quarantine_one(client, dlq_url, "m-1", kind="invalid_payload", source=source)
    quarantine_one(client, dlq_url, "m-2", kind="not_started", source=source)

    report = redrive(client, dlq_url, kinds=KindFilter(frozenset({"invalid_payload"})), wait_seconds=0,
                     watch_seconds=0)  # fmt: skip

    assert report.kinds("moved") == {"invalid_payload": 1}
    assert report.kinds(SKIPPED) == {"not_started": 1}


def test_redrive_interrupted_gives_back_every_message_it_held(queues):
    # GIVEN five messages and a redrive at one message a second
    client, source_url, dlq_url, _ = queues
    for i in range(5):
        quarantine_one(client, dlq_url, f"m-{i}", source=source_arn(client, source_url))
    clock = FakeClock()
    moves = []

    def interrupt_on_the_second_pause() -> None:
        moves.append(clock.now)
        if len(moves) == 2:
            raise KeyboardInterrupt

    clock.on_sleep = interrupt_on_the_second_pause

    # WHEN Ctrl-C arrives during the pause after the second move
    report = redrive(client, dlq_url, rate=1, wait_seconds=0, watch_seconds=0, clock=clock, sleep=clock.sleep)

    # THEN it says so, and the three not moved are visible in the DLQ at once, not after their hold
    assert report.interrupted and report.total == 2
    counts = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])["Attributes"]
    assert counts["ApproximateNumberOfMessages"] == "3" and counts["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_cli_dry_run_says_poison_would_come_straight_back(queues, capsys):
    client, source_url, dlq_url, dlq_arn = queues
    quarantine_one(client, dlq_url, "m-1", kind="invalid_payload", source=source_arn(client, source_url))

    assert main(["redrive", "--dlq-arn", dlq_arn, "--dry-run", "--include-poison", "--region", "us-east-1"]) == 0

    out = capsys.readouterr().out
    assert "dry run: would move 1 message(s)" in out
    assert "1 would come straight back unless the code changed (1 invalid_payload)" in out


def test_status_line_for_an_endpoint_answering_with_an_html_page():
    # GIVEN the error botocore raises for moto_server's HTML 500 page
    from botocore.exceptions import ClientError

    page = "<!doctype html><html><head><title>500 Internal Server Error</title></head>" + "x" * 500
    response: Any = {"Error": {"Code": "500", "Message": page}, "ResponseMetadata": {"HTTPStatusCode": 500}}
    error = ClientError(response, "ListMessageMoveTasks")

    line = move_tasks_unavailable(error)

    assert line == "SQS move tasks: not available from this endpoint (HTTP 500); redrive does not need them"


def test_cli_redrive_leaves_a_missing_payload_unless_its_kind_is_asked_for(queues, capsys):
    # GIVEN a message whose offloaded payload is gone, and one whose payload S3 refused to the function
    client, source_url, dlq_url, dlq_arn = queues
    source = source_arn(client, source_url)
    quarantine_one(client, dlq_url, "m-missing", kind="payload_missing", source=source)
    quarantine_one(client, dlq_url, "m-unreadable", kind="payload_unreadable", source=source)
    argv = ["redrive", "--dlq-arn", dlq_arn, "--region", "us-east-1", "--rate", "100", "--watch", "0"]

    # WHEN redriven by default: THEN the unreadable one moves (its permission can be fixed), the other stays
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "skipped 1 (1 payload_missing)" in out
    assert visible(client, source_url) == 1 and visible(client, dlq_url) == 1

    # WHEN its kind is asked for: THEN it moves too
    assert main([*argv, "--kind", "payload_missing"]) == 0
    assert visible(client, source_url) == 2 and visible(client, dlq_url) == 0


def test_cli_redrive_with_max_says_how_many_it_left_not_that_they_arrived(queues, capsys):
    # GIVEN twelve messages in the DLQ
    client, source_url, dlq_url, dlq_arn = queues
    for i in range(12):
        quarantine_one(client, dlq_url, f"m-{i}", source=source_arn(client, source_url))

    # WHEN at most three are redriven, watching a second for returns
    assert main(["redrive", "--dlq-arn", dlq_arn, "--region", "us-east-1", "--max", "3", "--watch", "1"]) == 0

    # THEN three moved; the nine it was told to leave are said to be left, not to have arrived
    out = capsys.readouterr().out
    assert "moved 3 message(s)" in out
    assert "arrived" not in out
    assert "left 9 of the 12 in the DLQ (--max 3)" in out
    assert visible(client, source_url) == 3 and visible(client, dlq_url) == 9


def test_cli_peek_has_a_header_and_each_event_id(queues, capsys):
    # GIVEN a quarantined event, and a message SQS moved there without a reason
    client, _, dlq_url, _ = queues
    body = json.dumps({"event_id": "evt_42", "event_type": "hello", "payload": {}})
    message = QuarantinedMessage(body=body, kind="invalid_payload", reason="payload.name: Field required",
                                 source_message_id="m-1", source_queue_arn="-", receive_count=1,
                                 event_type="hello")  # fmt: skip
    assert SqsQuarantine(dlq_url, client_factory=lambda _: client).send_batch([message], DEADLINE) == [None]
    client.send_message(QueueUrl=dlq_url, MessageBody="not json")

    # WHEN peeked
    assert main(["peek", "--queue-url", dlq_url, "--region", "us-east-1"]) == 0

    # THEN a header names the columns, and each line has the event_id (or - when the body has none)
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["source_message_id", "event_id", "event_type", "trace_id", "why"]
    [quarantined] = [row for row in rows if row.startswith("m-1")]
    assert quarantined.split()[:5] == ["m-1", "evt_42", "hello", "-", "invalid_payload:"]
    [other] = [row for row in rows if not row.startswith("m-1")]
    assert other.split()[1:3] == ["-", "-"]


class ClosedPipe(io.StringIO):
    """stdout whose reader has gone (`sqs-dlq status | head -0`)."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_cli_a_reader_that_goes_away_ends_it_quietly(queues, monkeypatch, capsys):
    _, _, _, dlq_arn = queues
    monkeypatch.setattr("sys.stdout", ClosedPipe())
    assert main(["status", "--dlq-arn", dlq_arn, "--region", "us-east-1"]) == 141
    assert capsys.readouterr().err == ""
