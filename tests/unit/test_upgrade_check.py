"""The comparison behind make upgrade-check, on small templates: what CloudFormation replaces or orphans."""

from __future__ import annotations

from typing import Any

import pytest

from infra.upgrade_check import UpgradeCheckError, compare, main, resolve


def queue(name: str | None = None, *, retain: bool = False, **properties: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "Type": "AWS::SQS::Queue",
        "Properties": {**({"QueueName": name} if name else {}), **properties},
        "Metadata": {"aws:cdk:path": "S/Consumer/Queues/Queue/Resource"},
    }
    if retain:
        resource |= {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}
    return resource


def mapping(queue_id: str) -> dict[str, Any]:
    return {
        "Type": "AWS::Lambda::EventSourceMapping",
        "Properties": {"EventSourceArn": {"Fn::GetAtt": [queue_id, "Arn"]}, "FunctionName": {"Ref": "Fn1"},
                       "BatchSize": 10},
    }  # fmt: skip


def template(**resources: dict[str, Any]) -> dict[str, Any]:
    return {"Resources": resources}


def test_compare_finds_nothing_for_an_update_in_place():
    # GIVEN a queue whose visibility timeout and a mapping whose batch size change
    old = template(Queue1=queue("q", VisibilityTimeout=300), Map1=mapping("Queue1"))
    new = template(Queue1=queue("q", VisibilityTimeout=600), Map1=mapping("Queue1") | {"Properties": {
        **mapping("Queue1")["Properties"], "BatchSize": 5}})  # fmt: skip

    # THEN nothing is replaced: both are updated in place
    assert compare("dev", old, new) == []


def test_compare_names_a_renamed_retained_queue_orphaned_its_successor_not_created_and_the_mapping_replaced():
    # GIVEN a retained, named queue whose construct id changed, and the mapping reading it
    old = template(QueuesQueueD70CDEE6=queue("s-queue", retain=True), Map1=mapping("QueuesQueueD70CDEE6"))
    new = template(QueuesSourceQueueA5AE7B56=queue("s-queue", retain=True), Map1=mapping("QueuesSourceQueueA5AE7B56"))

    # WHEN compared
    found = {f.logical_id: f for f in compare("prod", old, new)}

    # THEN the old queue is orphaned, the new one collides with its name, and the mapping is replaced
    assert found["QueuesQueueD70CDEE6"].action == "orphaned" and found["QueuesQueueD70CDEE6"].blocking
    assert found["QueuesSourceQueueA5AE7B56"].action == "not created"
    assert '"s-queue"' in found["QueuesSourceQueueA5AE7B56"].reason
    assert found["Map1"].action == "replaced" and "EventSourceArn" in found["Map1"].reason
    assert not found["Map1"].stateful
    assert "prod: QueuesQueueD70CDEE6 (stateful AWS::SQS::Queue at S/Consumer/Queues/Queue/Resource)" in (
        found["QueuesQueueD70CDEE6"].line()
    )


def test_compare_replaces_a_queue_whose_name_changes_and_what_refers_to_it():
    # GIVEN a queue renamed in place (same logical id, new QueueName), read by a mapping
    old = template(Queue1=queue("a"), Map1=mapping("Queue1"))
    new = template(Queue1=queue("b"), Map1=mapping("Queue1"))

    # THEN the queue is replaced, and so is the mapping: its EventSourceArn is the replaced queue's ARN
    found = {f.logical_id: f for f in compare("dev", old, new)}
    assert found["Queue1"].action == "replaced" and 'QueueName "a" -> "b"' in found["Queue1"].reason
    assert found["Map1"].action == "replaced" and "refers to Queue1" in found["Map1"].reason


@pytest.mark.parametrize(
    ("resource_type", "old", "new"),
    [
        ("AWS::SQS::Queue", {"FifoQueue": True}, {}),
        ("AWS::DynamoDB::GlobalTable", {"KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}]},
         {"KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}]}),
        ("AWS::DynamoDB::Table", {"TableName": "t"}, {"TableName": "u"}),
        ("AWS::S3::Bucket", {"BucketName": "b"}, {"BucketName": "c"}),
        ("AWS::SNS::Topic", {"TopicName": "t"}, {"TopicName": "u"}),
    ],
)  # fmt: skip
def test_compare_flags_each_stateful_type_replaced_by_its_replacement_property(resource_type, old, new):
    found = compare("dev", template(R1={"Type": resource_type, "Properties": old}),
                    template(R1={"Type": resource_type, "Properties": new}))  # fmt: skip
    assert [(f.logical_id, f.action, f.blocking) for f in found] == [("R1", "replaced", True)]


def test_compare_lists_a_replaced_function_without_blocking_and_a_deleted_table_as_deleted():
    # GIVEN a function given a fixed name, and a table (DeletionPolicy Delete) that is gone
    function = {"Type": "AWS::Lambda::Function", "Properties": {"MemorySize": 256}}
    table = {"Type": "AWS::DynamoDB::GlobalTable", "Properties": {}}
    old = template(Fn1=function, Table1=table)
    new = template(Fn1=function | {"Properties": {"MemorySize": 256, "FunctionName": "f"}})

    # THEN the table is deleted (blocking), the function replaced (listed, not blocking)
    found = {f.logical_id: f for f in compare("dev", old, new)}
    assert (found["Table1"].action, found["Table1"].blocking) == ("deleted", True)
    assert (found["Fn1"].action, found["Fn1"].blocking) == ("replaced", False)


def test_upgrade_check_refuses_an_unknown_ref_in_one_line(capsys):
    # WHEN the check is run from a ref git does not know
    status = main(["--from", "no-such-ref-anywhere"])

    # THEN it exits 2 with one line naming it
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "unknown git ref 'no-such-ref-anywhere'" in err
    with pytest.raises(UpgradeCheckError, match="FROM is required"):
        resolve("")
    with pytest.raises(UpgradeCheckError, match="unknown git ref"):
        resolve("--all")
