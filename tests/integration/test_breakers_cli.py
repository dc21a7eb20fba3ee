"""sqs-breakers against moto: each dependency's breaker and the mapping shown, opened and closed by hand."""

from __future__ import annotations

import io
import json
import zipfile

import boto3
import pytest
from moto import mock_aws

from operations.breakers import main
from sqs_consumer.dependencies.store import DynamoDBBreakerStore

TABLE = "consumer-idempotency"


@pytest.fixture
def stage(aws_credentials):
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(TableName=TABLE, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                              BillingMode="PAY_PER_REQUEST")  # fmt: skip
        iam = boto3.client("iam", region_name="us-east-1")
        lam = boto3.client("lambda", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("index.py", "def handler(event, context):\n    return None\n")
        lam.create_function(FunctionName="consumer", Runtime="python3.12", Role=role, Handler="index.handler",
                            Code={"ZipFile": code.getvalue()})  # fmt: skip
        url = sqs.create_queue(QueueName="orders")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        lam.create_event_source_mapping(FunctionName="consumer", EventSourceArn=arn,
                                        ScalingConfig={"MaximumConcurrency": 10})  # fmt: skip
        yield ["--table", TABLE, "--function", "consumer", "--queue-arn", arn], dynamodb


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_status_shows_each_declared_dependency_and_the_mapping(stage, capsys):
    where, _ = stage

    assert main(["status", *where, "--json"]) == 0

    breaker, mapping = lines(capsys)
    assert (breaker["dependency"], breaker["state"]) == ("orders-api", "closed")
    assert (mapping["enabled"], mapping["max_concurrency"]) == (True, 10)


def test_open_then_close_by_hand_pauses_and_resumes_the_mapping(stage, capsys):
    where, dynamodb = stage

    # WHEN the operator opens the breaker for 5 minutes
    assert main(["open", *where, "--dependency", "orders-api", "--minutes", "5", "--reason", "maintenance"]) == 0
    capsys.readouterr()

    # THEN it is open, by the operator, and the mapping disabled
    opened = DynamoDBBreakerStore(TABLE, dynamodb).read(["orders-api"])["orders-api"]
    assert (opened.mode.value, opened.changed_by, opened.reason) == ("open", "operator", "maintenance")
    assert 295 <= opened.seconds_to_probe(opened.opened_at or 0) <= 300
    assert main(["status", *where, "--json"]) == 0
    assert lines(capsys)[-1]["enabled"] is False

    # WHEN the operator closes it, THEN it is closed and the mapping enabled at the concurrency asked
    assert main(["close", *where, "--dependency", "orders-api", "--max-concurrency", "4"]) == 0
    capsys.readouterr()
    assert DynamoDBBreakerStore(TABLE, dynamodb).read(["orders-api"])["orders-api"].mode.value == "closed"
    main(["status", *where, "--json"])
    mapping = lines(capsys)[-1]
    assert (mapping["enabled"], mapping["max_concurrency"]) == (True, 4)


@pytest.mark.parametrize("argv", [
    ["open", "--table", TABLE, "--dependency", "Orders API"],
    ["close", "--table", TABLE, "--dependency", "orders-api", "--function", "consumer"],
    ["open", "--table", TABLE, "--dependency", "orders-api", "--minutes", "0"],
    ["close", "--table", TABLE, "--dependency", "orders-api", "--max-concurrency", "1"],
])  # fmt: skip
def test_a_bad_argument_prints_usage_and_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "sqs-breakers" in capsys.readouterr().err
