"""`make destroy` empties the payload bucket of a stage that does not retain its data, after one question."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.empty_payload_bucket import bucket_of, empty, main

TEMPLATE = json.dumps({
    "Resources": {"Payloads": {"Type": "AWS::S3::Bucket"}},
    "Outputs": {"PayloadBucketName": {"Value": {"Ref": "Payloads"}}},
})  # fmt: skip


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        boto3.client("cloudformation").create_stack(StackName="SqsConsumer-dev", TemplateBody=TEMPLATE)
        s3 = boto3.client("s3")
        bucket = bucket_of(boto3.client("cloudformation"), "SqsConsumer-dev")
        assert bucket is not None
        yield s3, bucket


class Answer:
    """A reply to the question, remembering what was asked."""

    def __init__(self, reply: str) -> None:
        self.reply, self.asked = reply, list[str]()

    def __call__(self, question: str) -> str:
        self.asked.append(question)
        return self.reply


def keys(s3: Any, bucket: str) -> list[str]:
    return [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_a_dev_stage_is_emptied_after_one_yes_across_delete_batches(aws, monkeypatch):
    s3, bucket = aws
    monkeypatch.setattr("infra.empty_payload_bucket.DELETE_BATCH", 2)  # several DeleteObjects calls
    for index in range(5):
        s3.put_object(Bucket=bucket, Key=f"payload-{index}", Body=b"{}")
    answer = Answer("y")
    assert main(["dev"], ask=answer) == 0
    assert answer.asked == ["Delete the stack SqsConsumer-dev and every payload in its payload bucket? [y/N] "]
    assert keys(s3, bucket) == []


def test_a_no_deletes_nothing_and_fails_so_make_stops(aws):
    s3, bucket = aws
    s3.put_object(Bucket=bucket, Key="payload", Body=b"{}")
    assert main(["dev"], ask=lambda _: "") == 1
    assert keys(s3, bucket) == ["payload"]


def test_prod_keeps_its_payloads(aws):
    s3, bucket = aws
    s3.put_object(Bucket=bucket, Key="payload", Body=b"{}")
    answer = Answer("yes")
    assert main(["prod"], ask=answer) == 0
    assert answer.asked == ["Delete the stack SqsConsumer-prod? [y/N] "]
    assert keys(s3, bucket) == ["payload"]


def test_a_stack_that_does_not_exist_has_no_bucket(aws):
    assert bucket_of(boto3.client("cloudformation"), "SqsConsumer-nowhere") is None
    assert main(["local", "--yes"]) == 0


def test_an_object_s3_did_not_delete_stops_the_run():
    class Refusing:
        def get_paginator(self, _: str) -> Any:
            return type("P", (), {"paginate": lambda self, **_: [{"Contents": [{"Key": "k"}]}]})()

        def delete_objects(self, **_: Any) -> dict[str, Any]:
            return {"Errors": [{"Key": "k", "Code": "AccessDenied", "Message": "no"}]}

    with pytest.raises(RuntimeError, match="S3 did not delete 1 payload"):
        empty(Refusing(), "b")
