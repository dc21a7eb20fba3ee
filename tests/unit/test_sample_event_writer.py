"""`make event` writes a sample in Lambda's exact shape, with the outcome the consumer gives for it."""

from __future__ import annotations

import hashlib
import json

import pytest

from local.sample_event import main, write_sample
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.routes import REGISTRY
from tests.support.fakes import FakeContext, FakeQuarantine


def test_written_sample_has_lambda_shape_and_its_true_outcome(tmp_path):
    event_path, expected_path = write_sample("document.processed", {"document_id": ""}, "bad-doc", tmp_path)

    event = json.loads(event_path.read_text())
    [record] = event["Records"]
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
    assert json.loads(record["body"])["event_type"] == "document.processed"
    expected = json.loads(expected_path.read_text())
    # An empty document_id is poison: the expected outcome says it is quarantined, as the consumer does
    quarantine = FakeQuarantine()
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
def test_bad_arguments_print_usage_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage:" in capsys.readouterr().err
