"""The emulated event source mapping obeys UpdateEventSourceMapping made through moto's Lambda API, and
one-time EventBridge Scheduler schedules kept in moto fire the function."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import botocore.exceptions
import pytest
from botocore.config import Config

from local import demo
from local.event_source import BatchResult
from local.lambda_api import lambda_client, scheduler_client
from local.pipeline import Pipeline, running_pipeline
from local.sqs_server import local_client

EVENTS = Path(__file__).resolve().parents[2] / "events"
ROLE = "arn:aws:iam::123456789012:role/scheduler-invokes-consumer"


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.2)


@pytest.fixture
def batches() -> list[BatchResult]:
    return []


@pytest.fixture
def pipeline(local_template: Path, tmp_path: Path, batches: list[BatchResult]) -> Iterator[Pipeline]:
    # Three instances: the template's maximum concurrency (2) leaves the third idle until it is raised.
    with running_pipeline(local_template, tmp_path, instances=3, on_batch=batches.append) as running:
        yield running


def counts(pipeline: Pipeline) -> tuple[int, int]:
    attributes = pipeline.client.get_queue_attributes(
        QueueUrl=pipeline.queue.url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_a_disabled_mapping_receives_nothing_and_resumes_when_enabled(pipeline: Pipeline, batches: list[BatchResult]):
    client = lambda_client(pipeline.server.endpoint_url)
    mapping = pipeline.mapping
    assert mapping is not None
    wait_for(lambda: mapping.polling == {0, 1}, 15, "the template's two workers polling")

    # WHEN the mapping is disabled through Lambda's API, as the function pauses it
    client.update_event_source_mapping(UUID=pipeline.mapping_id, Enabled=False)
    wait_for(lambda: not mapping.polling, 15, "every worker idle once its poll ended")
    message = demo.DemoMessage("hello", demo._event("hello", {"name": "paused"}), demo.SUCCEEDED)
    published = demo.publish(pipeline.client, pipeline.queue.url, [message], None)
    time.sleep(3)  # several of the poller's looks at the mapping

    # THEN the message waits: never received, so its receive count does not grow
    assert counts(pipeline) == (1, 0)
    assert batches == []

    # WHEN it is enabled again
    client.update_event_source_mapping(UUID=pipeline.mapping_id, Enabled=True)
    wait_for(lambda: counts(pipeline) == (0, 0) and len(batches) == 1, 30, "the waiting message delivered")

    # THEN it was delivered once and deleted
    assert batches[0].message_ids == tuple(published) == batches[0].deleted


def test_maximum_concurrency_resizes_the_workers_within_lambdas_bounds(pipeline: Pipeline):
    client = lambda_client(pipeline.server.endpoint_url)
    mapping = pipeline.mapping
    assert mapping is not None
    wait_for(lambda: mapping.polling == {0, 1}, 15, "two workers, as the template says")

    client.update_event_source_mapping(UUID=pipeline.mapping_id, ScalingConfig={"MaximumConcurrency": 3})
    wait_for(lambda: mapping.polling == {0, 1, 2}, 15, "the third worker polling")

    client.update_event_source_mapping(UUID=pipeline.mapping_id, ScalingConfig={"MaximumConcurrency": 2})
    wait_for(lambda: mapping.polling == {0, 1}, 15, "back to two")

    # Lambda refuses a maximum concurrency below 2 (moto alone would accept it), whatever the client checks
    unchecked = local_client("lambda", pipeline.server.endpoint_url, Config(parameter_validation=False))
    with pytest.raises(botocore.exceptions.ClientError, match="InvalidParameterValue"):
        unchecked.update_event_source_mapping(UUID=pipeline.mapping_id, ScalingConfig={"MaximumConcurrency": 1})
    assert client.get_event_source_mapping(UUID=pipeline.mapping_id)["ScalingConfig"] == {"MaximumConcurrency": 2}


def test_a_one_time_schedule_invokes_the_function_with_its_input_then_is_deleted(pipeline: Pipeline):
    scheduler = scheduler_client(pipeline.server.endpoint_url)
    function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{pipeline.function_name}"
    event = json.loads((EVENTS / "hello.json").read_text())
    at = (datetime.now(UTC) + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S")
    # GIVEN a one-time schedule aimed at the function, and one aimed at another function
    for name, arn in (("probe-1", function_arn), ("elsewhere", function_arn.replace(pipeline.function_name, "other"))):
        scheduler.create_schedule(
            Name=name, ScheduleExpression=f"at({at})", FlexibleTimeWindow={"Mode": "OFF"},
            Target={"Arn": arn, "RoleArn": ROLE, "Input": json.dumps(event)}, ActionAfterCompletion="DELETE",
        )  # fmt: skip
    watcher = pipeline.scheduler
    assert watcher is not None

    # WHEN its time comes
    wait_for(lambda: len(watcher.fired) == 1, 20, "the schedule fired")
    wait_for(
        lambda: [s["Name"] for s in scheduler.list_schedules()["Schedules"]] == ["elsewhere"], 10, "probe-1 deleted"
    )

    # THEN the function ran the schedule's input, and only the schedule aimed at it fired
    [fired] = watcher.fired
    assert fired.name == "probe-1"
    assert fired.invocation is not None
    assert not fired.invocation.function_error, fired.invocation.payload
    expected = json.loads((EVENTS / "hello.expected.json").read_text())
    assert fired.invocation.payload == {"batchItemFailures": expected["batchItemFailures"]}
    assert watcher.skipped == [f"elsewhere: at({at}) -> {function_arn.replace(pipeline.function_name, 'other')}"]
