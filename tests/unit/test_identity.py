"""The record of stateful resources against a template: what each departure says."""

from __future__ import annotations

from typing import Any

from infra.identity import current_record, record_changes, stateful_resources


def queue(name: str | None = None, fifo: bool | None = None, path: str = "S/Consumer/Queues/Queue/Resource") -> dict:
    properties: dict[str, Any] = {"VisibilityTimeout": 300}
    if name is not None:
        properties["QueueName"] = name
    if fifo is not None:
        properties["FifoQueue"] = fifo
    return {"Type": "AWS::SQS::Queue", "Properties": properties, "Metadata": {"aws:cdk:path": path}}


def template(**resources: dict) -> dict:
    role = {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}}
    return {"Resources": {"Role1": role, **resources}}


def test_stateful_resources_keep_the_stateful_types_and_their_replacement_properties_only():
    # GIVEN a template with a named queue and a role
    found = stateful_resources(template(Queue1=queue("s-queue")))

    # THEN only the queue is recorded, with the property whose change replaces it (not its visibility timeout)
    assert found == {
        "Queue1": {"type": "AWS::SQS::Queue", "path": "S/Consumer/Queues/Queue/Resource",
                   "properties": {"QueueName": "s-queue"}},
    }  # fmt: skip


def test_record_changes_name_a_renamed_construct_its_stage_and_what_to_do():
    # GIVEN a recorded queue whose construct id changed (a new logical id for the same name)
    recorded = current_record({"prod": template(ConsumerQueuesQueueD70CDEE6=queue("s-queue"))})
    now = current_record({"prod": template(ConsumerQueuesSourceQueue12345678=queue("s-queue", path="S/Source"))})

    # WHEN compared
    problems = record_changes(recorded, now)

    # THEN one line names the stage, the old id and its name, the new id, and both ways out
    assert len(problems) == 1
    assert "stage 'prod': ConsumerQueuesQueueD70CDEE6 (AWS::SQS::Queue" in problems[0]
    assert "QueueName s-queue" in problems[0] and "ConsumerQueuesSourceQueue12345678" in problems[0]
    assert "keep the construct ids" in problems[0] and "make stateful-record" in problems[0]


def test_record_changes_name_a_property_change_that_replaces_the_resource():
    # GIVEN a queue that becomes FIFO under the same logical id
    recorded = current_record({"dev": template(Queue1=queue("q"))})
    now = current_record({"dev": template(Queue1=queue("q.fifo", fifo=True))})

    # THEN its name and FIFO changes are named as a replacement
    (problem,) = record_changes(recorded, now)
    assert "FifoQueue null -> true" in problem and 'QueueName "q" -> "q.fifo"' in problem
    assert "would replace it" in problem


def test_record_changes_ask_for_a_new_stateful_resource_to_be_recorded_and_accept_an_unchanged_one():
    # GIVEN a record with one queue, and a template with it and another
    recorded = current_record({"dev": template(Queue1=queue("q"))})
    now = current_record({"dev": template(Queue1=queue("q"), Bucket1={"Type": "AWS::S3::Bucket"})})

    # THEN the unchanged queue passes and the bucket is to be recorded
    (problem,) = record_changes(recorded, now)
    assert "Bucket1 (AWS::S3::Bucket" in problem and "the record does not have" in problem
    assert record_changes(recorded, recorded) == []
