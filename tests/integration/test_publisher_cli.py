"""sqs-publish against moto: JSON lines from stdin, a bad line failing alone, a large event offloaded."""

from __future__ import annotations

import io
import json
import os
import threading
import time

import boto3
import pytest
from moto import mock_aws

from publisher.__main__ import main
from sqs_consumer.payloads import pointer_from
from sqs_consumer.testing import events as sqs


def test_cli_streams_stdin_and_offloads_with_a_payload_bucket(aws_credentials, monkeypatch, capsys):
    with mock_aws():
        # GIVEN a queue with a 1 KiB maximum, the payload bucket, and stdin holding a small event,
        # a line that is not JSON, and an event over the maximum
        boto3.client("s3").create_bucket(Bucket="payloads")
        client = boto3.client("sqs")
        url = client.create_queue(QueueName="events", Attributes={"MaximumMessageSize": "1024"})["QueueUrl"]
        large = sqs.body("hello", {"name": "n", "note": "x" * 2_000}, event_id="evt_large")
        lines = [sqs.body("hello", event_id="evt_small"), '{"event_id": "evt_broken", ', large]
        monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))

        # WHEN sqs-publish reads them
        code = main(["--queue-url", url, "--payload-bucket", "payloads", "--concurrency", "2"])

        # THEN one line per event in input order; the broken line fails alone and the exit code says so
        out = capsys.readouterr().out.splitlines()
        assert [line.split()[:2] for line in out] == [["sent", "evt_small"], ["FAILED", "<no"], ["sent", "evt_large"]]
        assert code == 1
        # and the large event is in the bucket, pointed to by its message
        messages = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        bodies = [json.loads(message["Body"]) for message in messages]
        assert len(bodies) == 2
        [pointer] = [pointer_from(body) for body in bodies if isinstance(body, list)]
        stored = boto3.client("s3").get_object(Bucket=pointer.bucket, Key=pointer.key)["Body"].read()
        assert json.loads(stored) == json.loads(large)


@pytest.mark.parametrize("argv", [["--payload-bucket", "payloads"], []])
def test_cli_without_stdin_events_is_a_usage_error(argv, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("\n\n"))
    with pytest.raises(SystemExit) as exited:
        main(["--queue-url", "https://sqs/q", *argv])
    assert exited.value.code == 2
    assert "no events to publish" in capsys.readouterr().err


class FlushedOutput(io.StringIO):
    """stdout that keeps what was flushed: what a reader at the other end of a pipe has seen."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed = ""

    def flush(self) -> None:
        super().flush()
        self.flushed = self.getvalue()

    def wait_for(self, text: str, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while text not in self.flushed and time.monotonic() < deadline:
            time.sleep(0.01)
        return text in self.flushed


def test_cli_prints_each_result_while_the_producer_is_quiet(aws_credentials, monkeypatch):
    with mock_aws():
        # GIVEN sqs-publish reading a pipe whose producer wrote one event, then went quiet
        url = boto3.client("sqs").create_queue(QueueName="events")["QueueUrl"]
        read_end, write_end = os.pipe()
        monkeypatch.setattr("sys.stdin", os.fdopen(read_end))
        out = FlushedOutput()
        monkeypatch.setattr("sys.stdout", out)
        codes: list[int] = []
        cli = threading.Thread(target=lambda: codes.append(main(["--queue-url", url])), daemon=True)
        cli.start()
        with os.fdopen(write_end, "w") as producer:
            producer.write(sqs.body("hello", event_id="evt_first") + "\n")
            producer.flush()

            # THEN that event is sent and its line printed and flushed while the producer is quiet
            assert out.wait_for("sent    evt_first", seconds=5), out.getvalue()
            producer.write(sqs.body("hello", event_id="evt_second") + "\n")
        cli.join(10)
        assert codes == [0]
        assert [line.split()[:2] for line in out.flushed.splitlines()] == [
            ["sent", "evt_first"],
            ["sent", "evt_second"],
        ]


def _events(count: int) -> list[dict]:
    return [json.loads(sqs.body("hello", event_id=f"evt_{i}")) for i in range(count)]


def test_cli_to_a_missing_queue_is_one_line_with_what_to_do(aws_credentials, tmp_path, capsys):
    with mock_aws():
        # GIVEN 200 events in a file and a queue URL that names no queue
        url = boto3.client("sqs").create_queue(QueueName="events")["QueueUrl"] + "-typo"
        path = tmp_path / "events.json"
        path.write_text(json.dumps(_events(200)))

        # WHEN sqs-publish sends them
        code = main(["--queue-url", url, "--file", str(path)])

    # THEN nothing per event: one line that names the cause and what to check, and exit 1
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert "nothing sent" in line
    assert "QueueDoesNotExist" in line or "NonExistentQueue" in line
    assert "check the queue URL" in line
    assert code == 1


class _RefusingSqs:
    """An SQS client whose caller may neither read the queue's attributes nor send to it."""

    def __init__(self) -> None:
        self.requests = 0

    def get_queue_attributes(self, **_: object) -> dict:
        raise _access_denied("GetQueueAttributes")

    def send_message_batch(self, **_: object) -> dict:
        self.requests += 1
        raise _access_denied("SendMessageBatch")


def _access_denied(operation: str) -> Exception:
    from botocore.exceptions import ClientError

    response = {"Error": {"Code": "AccessDenied", "Message": "not authorized to perform sqs:SendMessage"},
                "ResponseMetadata": {"HTTPStatusCode": 403}}  # fmt: skip
    return ClientError(response, operation)  # type: ignore[arg-type]


def test_cli_a_cause_shared_by_every_request_is_one_line_and_a_summary(monkeypatch, tmp_path, capsys):
    # GIVEN 200 events, and a caller SQS refuses every request
    sqs_client = _RefusingSqs()
    monkeypatch.setattr("publisher.__main__._clients", lambda args: (sqs_client, None))
    path = tmp_path / "events.json"
    path.write_text(json.dumps(_events(200)))

    # WHEN sqs-publish sends them
    code = main(["--queue-url", "https://sqs.us-east-1.amazonaws.com/123456789012/events", "--file", str(path)])

    # THEN no line per event: one line for the cause, with what to do, then the summary; exit 1
    captured = capsys.readouterr()
    assert captured.out == ""
    cause, summary = captured.err.splitlines()
    assert cause.startswith("sqs-publish: 200 event(s) not sent: AccessDenied")
    assert "sqs:SendMessage" in cause
    assert summary == "sqs-publish: sent 0, failed 200"
    assert code == 1
    # and an error no retry can fix is not retried
    assert sqs_client.requests == 20


def test_cli_without_credentials_is_one_line_with_what_to_do(monkeypatch, tmp_path, capsys):
    # GIVEN no credentials anywhere boto3 looks (and no instance metadata to ask)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)

    # WHEN sqs-publish sends 30 events (to loopback, where nothing listens: it never gets that far)
    code = main(["--queue-url", "http://127.0.0.1:9/123456789012/events", "--endpoint-url", "http://127.0.0.1:9",
                 "--region", "us-east-1", *(json.dumps(event) for event in _events(30))])  # fmt: skip

    # THEN one line that says to configure credentials
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert "NoCredentialsError" in line
    assert "configure AWS credentials" in line
    assert code == 1


def test_cli_names_a_file_it_cannot_read(tmp_path, capsys):
    # GIVEN a file that is not JSON, and a path where there is no file
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    for path in (broken, tmp_path / "missing.json"):
        # WHEN sqs-publish is given it
        with pytest.raises(SystemExit) as exited:
            main(["--queue-url", "https://sqs/q", "--file", str(path)])
        # THEN one line that names the file, and the usage exit code
        [line] = capsys.readouterr().err.splitlines()
        assert f"cannot read events from {path}" in line
        assert exited.value.code == 2


def test_cli_reads_a_json_lines_file_and_a_bad_line_fails_alone(aws_credentials, tmp_path, capsys):
    with mock_aws():
        # GIVEN a JSON Lines file (one event a line) with one broken line among them
        url = boto3.client("sqs").create_queue(QueueName="events")["QueueUrl"]
        path = tmp_path / "events.jsonl"
        lines = [json.dumps(event) for event in _events(3)]
        path.write_text("\n".join([lines[0], '{"event_id": "evt_x", ', lines[1], "", lines[2]]) + "\n")

        # WHEN sqs-publish is given it with --file
        code = main(["--queue-url", url, "--file", str(path)])

    # THEN each line is an event, the broken one failing alone, in the file's order
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in out] == [["sent", "evt_0"], ["FAILED", "<no"], ["sent", "evt_1"],
                                                  ["sent", "evt_2"]]  # fmt: skip
    assert code == 1


def test_cli_names_the_event_id_of_an_invalid_event_read_from_stdin(aws_credentials, monkeypatch, capsys):
    with mock_aws():
        # GIVEN an event with an event_id and an invalid payload, on stdin
        url = boto3.client("sqs").create_queue(QueueName="events")["QueueUrl"]
        invalid = {"event_id": "evt_invalid", "event_type": "hello", "payload": {}}
        monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(invalid) + "\n"))

        # WHEN sqs-publish reads it
        code = main(["--queue-url", url])

    # THEN its line names it, and says why it was not sent
    [line] = capsys.readouterr().out.splitlines()
    assert line.split()[:2] == ["FAILED", "evt_invalid"]
    assert "invalid_payload" in line
    assert code == 1


def test_cli_ends_with_a_summary(aws_credentials, capsys):
    with mock_aws():
        url = boto3.client("sqs").create_queue(QueueName="events")["QueueUrl"]
        code = main(["--queue-url", url, *(json.dumps(event) for event in _events(3))])
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 3
    assert captured.err.splitlines() == ["sqs-publish: sent 3, failed 0"]
    assert code == 0


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ([], "the following arguments are required: --queue-url"),
        (["--queue-url", "https://sqs/q", "--concurrency", "0"], "--concurrency: must be between 1 and 256"),
        (
            ["--queue-url", "https://sqs/q.fifo", "{}"],
            "--group-id, --group-field or --tenant-field is required for a FIFO queue",
        ),
    ],
)
def test_cli_bad_arguments_are_one_line_first_and_no_usage(argv, says, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("sqs-publish: error: ")
    assert says in line
    assert line.endswith("(see sqs-publish --help)")
