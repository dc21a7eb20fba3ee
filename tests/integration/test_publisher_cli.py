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
from tests.support import sqs_events as sqs


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
