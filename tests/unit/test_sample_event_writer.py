"""`make event` writes a sample in Lambda's exact shape, with the outcome the consumer gives for it."""

from __future__ import annotations

import hashlib
import json

import pytest

from local.sample_event import expected_outcome, main, write_sample
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.routes import REGISTRY
from sqs_consumer.testing.fakes import FakeContext, InMemoryDLQ


def test_written_sample_has_lambda_shape_and_its_true_outcome(tmp_path):
    event_path, expected_path = write_sample("document.processed", {"document_id": ""}, "bad-doc", tmp_path)

    event = json.loads(event_path.read_text())
    [record] = event["Records"]
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
    assert json.loads(record["body"])["event_type"] == "document.processed"
    expected = json.loads(expected_path.read_text())
    # An empty document_id is poison: the expected outcome says it is quarantined, as the consumer does
    quarantine = InMemoryDLQ()
    response = BatchConsumer(REGISTRY, quarantine).handle(event, FakeContext())
    assert expected == {"batchItemFailures": response["batchItemFailures"], "quarantined": quarantine.message_ids}
    assert expected["quarantined"] == [record["messageId"]]


@pytest.mark.parametrize(
    "argv",
    [
        ["--type", "no.such.type", "--payload", "{}"],
        ["--type", "hello", "--payload", "not json"],
        ["--type", "hello", "--payload", "[1]"],
        ["--type", "hello", "--payload", '{"name": "x"}'],  # events/hello.json exists: needs --force
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("python -m local.sample_event: error: ")
    assert line.endswith("(see python -m local.sample_event --help)")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (
            ["--type", "", "--payload", ""],
            "TYPE (--type) is required: one of document.processed, hello, order.placed; e.g. make",
        ),
        (["--type", "hello", "--payload", ""], "PAYLOAD (--payload) is required: the payload as a JSON object; e.g."),
    ],
)
def test_make_event_without_its_variables_says_which_is_required(argv, says, capsys):
    # `make event` passes TYPE and PAYLOAD empty when they are not given
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert says in line


def test_an_invalid_payload_is_refused_with_the_validation_error(tmp_path, monkeypatch, capsys):
    # GIVEN a payload its model refuses (document_id must not be empty)
    monkeypatch.setattr("local.sample_event.EVENTS_DIR", tmp_path)

    # WHEN a sample is asked for without saying it is a poison sample
    code = main(["--type", "document.processed", "--payload", '{"document_id": ""}', "--name", "bad"])

    # THEN it is refused, with pydantic's words and what to do, and nothing is written
    err = capsys.readouterr().err
    assert code == 2
    assert "payload.document_id" in err and "String should have at least 1 character" in err
    assert "EXPECT=quarantine" in err
    assert list(tmp_path.iterdir()) == []


def test_a_poison_sample_is_written_when_asked_for(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("local.sample_event.EVENTS_DIR", tmp_path)

    code = main(["--type", "document.processed", "--payload", '{"document_id": ""}', "--name", "bad",
                 "--expect", "quarantine"])  # fmt: skip

    assert code == 0
    expected = json.loads((tmp_path / "bad.expected.json").read_text())
    assert len(expected["quarantined"]) == 1
    assert "(outcome: quarantine)" in capsys.readouterr().out


def test_a_sample_whose_outcome_differs_from_the_expected_one_is_not_written(tmp_path, monkeypatch, capsys):
    # GIVEN a valid payload whose handler fails on every receive
    monkeypatch.setattr("local.sample_event.EVENTS_DIR", tmp_path)

    code = main(["--type", "hello", "--payload", '{"name": "x", "simulate": "fail"}', "--name", "fails"])

    assert code == 2
    assert "outcome 'retry', not 'success'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("shape", ["sns", "eventbridge", "eventbridge-plain"])
def test_a_sample_in_an_upstream_shape_is_delivered_as_that_service_does_and_succeeds(shape, tmp_path, monkeypatch):
    # GIVEN `make event SHAPE=...` for a valid hello event
    monkeypatch.setattr("local.sample_event.EVENTS_DIR", tmp_path)

    # WHEN the sample is written
    assert main(["--type", "hello", "--payload", '{"name": "x"}', "--shape", shape]) == 0

    # THEN the body is the service's, SQS carries no attribute of ours, and the consumer's handler ran it
    [record] = json.loads((tmp_path / f"hello.{shape}.json").read_text())["Records"]
    body = json.loads(record["body"])
    assert record["messageAttributes"] == {}
    if shape == "sns":
        assert body["Type"] == "Notification" and body["MessageAttributes"]["event_type"]["Value"] == "hello"
        inner = json.loads(body["Message"])
    elif shape == "eventbridge":
        assert body["detail-type"] == "hello" and body["detail"]["event_type"] == "hello"
        inner = body["detail"]
    else:
        assert body["detail-type"] == "hello" and body["detail"] == {"name": "x"}
        inner = {"event_id": body["id"], "payload": body["detail"]}
    assert inner["event_id"] == "evt_hello_" + shape.replace("-", "_") + "_1" and inner["payload"] == {"name": "x"}
    expected = json.loads((tmp_path / f"hello.{shape}.expected.json").read_text())
    assert expected == {"batchItemFailures": [], "quarantined": []}


def test_an_offloaded_sample_is_a_pointer_with_its_size_and_a_payload_file_the_consumer_reads(tmp_path, monkeypatch):
    # GIVEN `make event SHAPE=offloaded` for a valid document.processed event
    monkeypatch.setattr("local.sample_event.EVENTS_DIR", tmp_path)

    # WHEN the sample is written
    payload = '{"document_id": "doc-1", "pages": 412}'
    assert main(["--type", "document.processed", "--payload", payload, "--shape", "offloaded"]) == 0

    # THEN the body is the extended clients' pointer, the size attribute is the payload file's size,
    # and the consumer fetched that file from S3 and ran the handler
    [record] = json.loads((tmp_path / "document.processed.offloaded.json").read_text())["Records"]
    assert json.loads(record["body"]) == [
        "software.amazon.payloadoffloading.PayloadS3Pointer",
        {"s3BucketName": "sample-payloads", "s3Key": "document.processed.offloaded"},
    ]
    stored = (tmp_path / "payloads" / "document.processed.offloaded.json").read_bytes()
    assert json.loads(stored)["payload"] == json.loads(payload)
    assert record["messageAttributes"]["ExtendedPayloadSize"]["stringValue"] == str(len(stored))
    expected = json.loads((tmp_path / "document.processed.offloaded.expected.json").read_text())
    assert expected == {"batchItemFailures": [], "quarantined": []}
    # AND without its payload in S3 the same sample is quarantined, not run
    (tmp_path / "payloads" / "document.processed.offloaded.json").unlink()
    event = json.loads((tmp_path / "document.processed.offloaded.json").read_text())
    assert expected_outcome(event, tmp_path)["quarantined"] == [record["messageId"]]
