"""The batch summary log and the aggregated EMF metrics."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Metrics

from sqs_consumer.observability import (
    EMF_MAX_DIMENSIONS,
    EMF_MAX_METRICS,
    EMF_MAX_VALUES,
    EmfDocuments,
    inject_lambda_context,
    logger,
    within_emf,
)
from sqs_consumer.pipeline import BatchConsumer
from sqs_consumer.routes import REGISTRY
from sqs_consumer.testing import events as sqs
from sqs_consumer.testing.fakes import FakeContext, InMemoryDLQ


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
    consumer = BatchConsumer(REGISTRY, InMemoryDLQ())

    consumer.handle(mixed_batch(), FakeContext())

    lines = logs.lines
    summaries = [line for line in lines if line["message"].startswith("Batch complete")]
    assert len(summaries) == 1
    summary = summaries[0]
    assert summary["level"] == "INFO"
    assert summary["message"] == "Batch complete: 3 succeeded, 1 failed, 2 quarantined, 0 skipped, 0 duplicate"
    assert (summary["succeeded"], summary["failed"], summary["quarantined"], summary["records"]) == (3, 1, 2, 6)


def test_failures_are_logged_at_warning_with_correlation_keys(logs):
    consumer = BatchConsumer(REGISTRY, InMemoryDLQ())
    failing = sqs.record(sqs.body("hello", {"name": "x", "simulate": "fail"}, event_id="evt_f"))

    consumer.handle(sqs.event(failing), FakeContext())

    [warning] = [line for line in logs.lines if line["level"] == "WARNING"]
    assert warning["message_id"] == failing["messageId"]
    assert warning["event_id"] == "evt_f"
    assert warning["event_type"] == "hello"
    assert "simulated failure" in warning["error"]


def test_per_record_lines_only_at_debug(logs):
    consumer = BatchConsumer(REGISTRY, InMemoryDLQ())
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
    consumer = BatchConsumer(REGISTRY, InMemoryDLQ(), metrics=metrics, wall_clock_ms=lambda: 11_000.0)

    # WHEN a mixed batch is handled
    consumer.handle(mixed_batch(), FakeContext())

    # THEN one EMF document per event type carries that type's counts and timings
    documents = {doc["event_type"]: doc for doc in json_lines(capsys.readouterr().out) if "_aws" in doc}
    assert set(documents) == {"hello", "document.processed", "unrecognized"}
    hello = documents["hello"]
    assert (hello["RecordsProcessed"], hello["RecordsFailed"]) == ([2.0], [1.0])
    assert "RecordsQuarantined" not in hello  # zero counts are left out
    assert hello["MessageAge"] == [10_000.0, 9_000.0, 8_000.0]
    assert len(hello["ProcessingTime"]) == 3
    assert documents["unrecognized"]["RecordsQuarantined"] == [2.0]
    assert documents["document.processed"]["RecordsProcessed"] == [1.0]
    [directive] = hello["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Test"
    assert ["event_type", "service"] in directive["Dimensions"] or ["service", "event_type"] in directive["Dimensions"]


def test_each_emf_document_is_what_powertools_serializes_for_its_values(capsys):
    # GIVEN the writer of a function's metrics, and one event type written twice with other values
    metrics = Metrics(namespace="Test", service="orders")
    documents = EmfDocuments(metrics)
    first: dict[str, float | list[float]] = {"RecordsProcessed": 2, "ProcessingTime": [0.125, 7.5],
                                             "MessageAge": [10_000.5, 3.0]}  # fmt: skip
    second: dict[str, float | list[float]] = {"RecordsProcessed": 7, "ProcessingTime": [0.004], "MessageAge": 0.0}
    before = int(time.time() * 1000)

    # WHEN the documents are written (the shape is kept after the first)
    documents.write("hello", first)
    documents.write("hello", second)
    third: dict[str, float | list[float]] = {"RecordsProcessed": 1, "RecordsFailed": 1, "MessageAge": 1.0}
    documents.write("document.processed", third)

    # THEN each is the document Powertools builds for those values, at the time it was written
    written = json_lines(capsys.readouterr().out)
    expected = [("hello", first), ("hello", second), ("document.processed", third)]
    assert len(written) == len(expected)
    for document, (event_type, values) in zip(written, expected, strict=True):
        reference = json.loads(json.dumps(metrics.serialize_metric_set(
            metrics={
                name: {"Unit": "Count" if name.startswith("Records") else "Milliseconds",
                       "Value": [float(v) for v in value] if isinstance(value, list) else [float(value)]}
                for name, value in values.items()
            },
            dimensions={"service": "orders", "event_type": event_type},
            metadata={},
        )))  # fmt: skip
        timestamp = document["_aws"].pop("Timestamp")
        assert before <= timestamp <= int(time.time() * 1000)
        reference["_aws"].pop("Timestamp")
        assert document == reference


def test_invocation_keys_are_those_powertools_inject_lambda_context_sets(logs, monkeypatch):
    # GIVEN an entry point that logs a line, after adding a key of its own when the event says so
    def handler(event: dict, context: Any) -> None:
        if event.get("append"):
            logger.append_keys(order_id="o-1")
        logger.warning(event["message"])

    def lines_of(entry_point: Callable[[dict, Any], None]) -> list[dict]:
        logs.clear()
        entry_point({"append": True, "message": "first"}, FakeContext(aws_request_id="req-1"))
        entry_point({"message": "second"}, FakeContext(aws_request_id="req-2"))
        return [{key: value for key, value in line.items() if key != "timestamp"} for line in logs.lines]

    # WHEN it is invoked twice from a cold start, under our decorator and under Powertools'
    ours = lines_of(inject_lambda_context(handler))
    monkeypatch.setattr("aws_lambda_powertools.logging.logger.is_cold_start", True)
    theirs = lines_of(logger.inject_lambda_context(handler, clear_state=True))

    # THEN the lines carry the same keys and values: cold only first, the handler's key cleared after
    assert ours == theirs
    assert [(line["cold_start"], line["function_request_id"], "order_id" in line) for line in ours] == [
        (True, "req-1", True),
        (False, "req-2", False),
    ]


def test_message_age_is_never_negative_when_the_sender_clock_is_ahead(capsys):
    # GIVEN a message stamped 4 s after the function's clock reads
    consumer = BatchConsumer(REGISTRY, InMemoryDLQ(), metrics=Metrics(namespace="Test", service="orders"),
                             wall_clock_ms=lambda: 1_000.0)  # fmt: skip

    consumer.handle(sqs.event(sqs.record(sqs.body("hello"), sent_timestamp_ms=5_000)), FakeContext())

    # THEN its age counts as zero, not as minus four seconds
    [document] = [doc for doc in json_lines(capsys.readouterr().out) if "_aws" in doc]
    assert document["MessageAge"] == [0.0]


def emf_documents(text: str) -> list[dict]:
    return [document for document in json_lines(text) if "_aws" in document]


def test_each_records_time_and_age_reach_cloudwatch_as_value_arrays_per_event_type(capsys):
    # GIVEN a timer that advances 1 ms a reading, and messages sent 3, 2 and 1 s before the batch starts
    ticks = iter(range(1_000))
    consumer = BatchConsumer(REGISTRY, InMemoryDLQ(), metrics=Metrics(namespace="Test", service="orders"),
                             wall_clock_ms=lambda: 4_000.0, timer=lambda: next(ticks) / 1000)  # fmt: skip
    records = [sqs.record(sqs.body("hello", event_id=f"evt_{n}"), sent_timestamp_ms=1_000 * n) for n in (1, 2, 3)]

    # WHEN the batch is handled
    consumer.handle(sqs.event(*records), FakeContext())

    # THEN one document carries one value per record: its handler time and its age at the batch's start
    [document] = emf_documents(capsys.readouterr().out)
    assert document["MessageAge"] == [3_000.0, 2_000.0, 1_000.0]
    assert len(document["ProcessingTime"]) == 3 and all(value > 0 for value in document["ProcessingTime"])
    names = {metric["Name"]: metric["Unit"] for metric in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert names["ProcessingTime"] == names["MessageAge"] == "Milliseconds"


def test_value_arrays_keep_within_emf_limits_with_no_more_documents_than_event_types(capsys):
    # GIVEN a batch of 250 records of one type and 3 of another, each 1..250 s old
    consumer = BatchConsumer(REGISTRY, InMemoryDLQ(), metrics=Metrics(namespace="Test", service="orders"),
                             wall_clock_ms=lambda: 1_000_000.0)  # fmt: skip
    hellos = [sqs.record(sqs.body("hello", event_id=f"h{n}"), sent_timestamp_ms=1_000_000 - 1_000 * n)
              for n in range(1, 251)]  # fmt: skip
    documents = [sqs.record(sqs.body("document.processed", {"document_id": f"d{n}"}, event_id=f"d{n}"))
                 for n in range(3)]  # fmt: skip

    consumer.handle(sqs.event(*hellos, *documents), FakeContext())

    # THEN one document per event type, each within the specification's limits
    written = {document["event_type"]: document for document in emf_documents(capsys.readouterr().out)}
    assert set(written) == {"hello", "document.processed"}
    for document in written.values():
        [directive] = document["_aws"]["CloudWatchMetrics"]
        assert len(directive["Metrics"]) <= EMF_MAX_METRICS
        assert all(len(dimensions) <= EMF_MAX_DIMENSIONS for dimensions in directive["Dimensions"])
        for metric in directive["Metrics"]:
            assert 1 <= len(document[metric["Name"]]) <= EMF_MAX_VALUES
    # AND past 100 records the values are evenly spaced order statistics, the least and greatest kept
    ages = written["hello"]["MessageAge"]
    assert len(ages) == EMF_MAX_VALUES
    assert ages == sorted(ages) and (ages[0], ages[-1]) == (1_000.0, 250_000.0)
    assert abs(statistics.median(ages) - 125_500.0) <= 2_000
    assert written["hello"]["RecordsProcessed"] == [250.0]
    assert len(written["document.processed"]["MessageAge"]) == 3


def test_value_arrays_are_milliseconds_to_the_microsecond(capsys):
    EmfDocuments(Metrics(namespace="Test", service="orders")).write("hello", {"ProcessingTime": [3e-05, 1.23456789]})
    [document] = json_lines(capsys.readouterr().out)
    assert document["ProcessingTime"] == [0.0, 1.235]


def test_within_emf_keeps_up_to_the_limit_whole_and_summarizes_beyond():
    assert within_emf([3.0, 1.0, 2.0]) == [3.0, 1.0, 2.0]
    summary = within_emf([float(n) for n in range(1_000, 0, -1)])
    assert len(summary) == EMF_MAX_VALUES
    assert summary[0] == 1.0 and summary[-1] == 1_000.0
    assert summary[98] >= 989.0  # the p99 of the summary is the p99 of the batch, within a step
