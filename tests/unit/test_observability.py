"""The batch summary log and the aggregated EMF metrics."""

from __future__ import annotations

import json
import time

from aws_lambda_powertools import Metrics

from sqs_consumer.observability import EmfDocuments, logger
from sqs_consumer.processing import BatchConsumer
from sqs_consumer.routes import REGISTRY
from tests.support import sqs_events as sqs
from tests.support.fakes import FakeContext, FakeQuarantine


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def mixed_batch() -> dict:
    return sqs.event(
        sqs.record(sqs.body("hello"), sent_timestamp_ms=1_000),
        sqs.record(sqs.body("hello"), sent_timestamp_ms=2_000),
        sqs.record(sqs.body("hello", {"name": "x", "simulate": "fail"}), sent_timestamp_ms=3_000),
        sqs.record(sqs.body("document.processed", {"document_id": "d"}), sent_timestamp_ms=4_000),
        sqs.record("not json", sent_timestamp_ms=5_000),
        sqs.record(sqs.body("weird.type", {}), sent_timestamp_ms=5_000),
    )


def test_batch_summary_is_one_info_line_with_counts(logs):
    consumer = BatchConsumer(REGISTRY, FakeQuarantine())

    consumer.handle(mixed_batch(), FakeContext())

    lines = logs.lines
    summaries = [line for line in lines if line["message"].startswith("Batch complete")]
    assert len(summaries) == 1
    summary = summaries[0]
    assert summary["level"] == "INFO"
    assert summary["message"] == "Batch complete: 3 succeeded, 1 failed, 2 quarantined, 0 skipped, 0 duplicate"
    assert (summary["succeeded"], summary["failed"], summary["quarantined"], summary["records"]) == (3, 1, 2, 6)


def test_failures_are_logged_at_warning_with_correlation_keys(logs):
    consumer = BatchConsumer(REGISTRY, FakeQuarantine())
    failing = sqs.record(sqs.body("hello", {"name": "x", "simulate": "fail"}, event_id="evt_f"))

    consumer.handle(sqs.event(failing), FakeContext())

    [warning] = [line for line in logs.lines if line["level"] == "WARNING"]
    assert warning["message_id"] == failing["messageId"]
    assert warning["event_id"] == "evt_f"
    assert warning["event_type"] == "hello"
    assert "simulated failure" in warning["error"]


def test_per_record_lines_only_at_debug(logs):
    consumer = BatchConsumer(REGISTRY, FakeQuarantine())
    previous = logger.log_level
    try:
        logger.setLevel("DEBUG")
        consumer.handle(sqs.event(sqs.record(sqs.body("hello"))), FakeContext())
        debug = [line for line in logs.lines if line["level"] == "DEBUG"]
        logs.clear()
        logger.setLevel("INFO")
        consumer.handle(sqs.event(sqs.record(sqs.body("hello"))), FakeContext())
        info_run = logs.lines
    finally:
        logger.setLevel(previous)
    assert any(line["message"] == "Record succeeded" for line in debug)
    assert not any(line["level"] == "DEBUG" for line in info_run)


def test_metrics_are_one_emf_document_per_event_type(capsys):
    # GIVEN a consumer with metrics and a clock 10 s after the messages were sent
    metrics = Metrics(namespace="Test", service="orders")
    consumer = BatchConsumer(REGISTRY, FakeQuarantine(), metrics=metrics, wall_clock_ms=lambda: 11_000.0)

    # WHEN a mixed batch is handled
    consumer.handle(mixed_batch(), FakeContext())

    # THEN one EMF document per event type carries that type's counts and timings
    documents = {doc["event_type"]: doc for doc in json_lines(capsys.readouterr().out) if "_aws" in doc}
    assert set(documents) == {"hello", "document.processed", "unrecognized"}
    hello = documents["hello"]
    assert (hello["RecordsProcessed"], hello["RecordsFailed"]) == ([2.0], [1.0])
    assert "RecordsQuarantined" not in hello  # zero counts are left out
    assert hello["MessageAgeMax"] == [10_000.0]
    assert "ProcessingTime" in hello
    assert documents["unrecognized"]["RecordsQuarantined"] == [2.0]
    assert documents["document.processed"]["RecordsProcessed"] == [1.0]
    [directive] = hello["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Test"
    assert ["event_type", "service"] in directive["Dimensions"] or ["service", "event_type"] in directive["Dimensions"]


def test_each_emf_document_is_what_powertools_serializes_for_its_values(capsys):
    # GIVEN the writer of a function's metrics, and one event type written twice with other values
    metrics = Metrics(namespace="Test", service="orders")
    documents = EmfDocuments(metrics)
    first = {"RecordsProcessed": 2, "ProcessingTime": 0.125, "MessageAgeMax": 10_000.5}
    second = {"RecordsProcessed": 7, "ProcessingTime": 3e-05, "MessageAgeMax": 0.0}
    before = int(time.time() * 1000)

    # WHEN the documents are written (the shape is kept after the first)
    documents.write("hello", first)
    documents.write("hello", second)
    documents.write("document.processed", {"RecordsProcessed": 1, "RecordsFailed": 1, "MessageAgeMax": 1.0})

    # THEN each is the document Powertools builds for those values, at the time it was written
    written = json_lines(capsys.readouterr().out)
    expected = [("hello", first), ("hello", second),
                ("document.processed", {"RecordsProcessed": 1, "RecordsFailed": 1, "MessageAgeMax": 1.0})]  # fmt: skip
    assert len(written) == len(expected)
    for document, (event_type, values) in zip(written, expected, strict=True):
        reference = dict(metrics.serialize_metric_set(
            metrics={
                name: {"Unit": "Count" if name.startswith("Records") else "Milliseconds", "Value": [float(value)]}
                for name, value in values.items()
            },
            dimensions={"service": "orders", "event_type": event_type},
            metadata={},
        ))  # fmt: skip
        timestamp = document["_aws"].pop("Timestamp")
        assert before <= timestamp <= int(time.time() * 1000)
        reference["_aws"] = {key: value for key, value in reference["_aws"].items() if key != "Timestamp"}
        assert document == reference
