"""The smoke test after a deploy, against moto: a canary into the stage's queue, its success read from the
consumer's idempotency record. The consumer is played by a thread that does what the function does with
the canary: receives it, records it COMPLETED under Powertools' key, deletes it."""

from __future__ import annotations

import io
import json
import threading
import zipfile

import boto3
import pytest
from moto import mock_aws

from operations import smoke
from sqs_consumer.idempotency.fingerprint import powertools_hash
from sqs_consumer.idempotency.records import KEY_NAMESPACE
from sqs_consumer.settings import ConsumerSettings

FUNCTION = "SqsConsumer-dev-ConsumerFunction1B019A9B-abc"
TABLE = "SqsConsumer-dev-ConsumerIdempotencyTable-xyz"


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    return buffer.getvalue()


@pytest.fixture
def stage(aws_credentials, tmp_path):
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        queue_url = session.client("sqs").create_queue(QueueName="SqsConsumer-dev-queue")["QueueUrl"]
        session.client("dynamodb").create_table(
            TableName=TABLE, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
        )  # fmt: skip
        role = session.client("iam").create_role(RoleName="consumer", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        session.client("lambda").create_function(
            FunctionName=FUNCTION, Runtime="python3.14", Role=role, Handler="handler.handler",
            Code={"ZipFile": _zip()},
            Environment={"Variables": {ConsumerSettings.env_name("idempotency_table"): TABLE}},
        )  # fmt: skip
        outputs = tmp_path / "outputs-dev.json"
        outputs.write_text(json.dumps({"SqsConsumer-dev": {"QueueQueueUrl": queue_url, "QueueFunctionName": FUNCTION}}))
        yield session, queue_url, outputs


def _consume_one(session, queue_url: str, status: str) -> threading.Thread:
    def consume() -> None:
        sqs, dynamodb = session.client("sqs"), session.client("dynamodb")
        while True:
            messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", [])
            if messages:
                break
        event_id = json.loads(messages[0]["Body"])["event_id"]
        key = f"{FUNCTION}.{KEY_NAMESPACE}#{powertools_hash(event_id)}"
        dynamodb.put_item(TableName=TABLE, Item={"id": {"S": key}, "status": {"S": status}})
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    return thread


def test_smoke_passes_once_the_canary_is_recorded_completed(stage, capsys):
    # GIVEN a consumer that completes what it receives
    session, queue_url, outputs = stage
    consumer = _consume_one(session, queue_url, "COMPLETED")

    # WHEN
    code = smoke.main(["--stage", "dev", "--outputs", str(outputs), "--timeout", "60"])

    # THEN
    consumer.join(5)
    assert code == 0
    assert "smoke test of dev: the canary smoke-" in capsys.readouterr().out


def test_smoke_fails_when_the_canary_never_completes(stage):
    # GIVEN a canary the consumer left in progress (a handler that hangs, a function that fails)
    session, queue_url, _ = stage
    event_id = "smoke-never"
    session.client("sqs").send_message(QueueUrl=queue_url, MessageBody=smoke.canary(event_id))
    key = f"{FUNCTION}.{KEY_NAMESPACE}#{powertools_hash(event_id)}"
    session.client("dynamodb").put_item(TableName=TABLE, Item={"id": {"S": key}, "status": {"S": "INPROGRESS"}})
    ticks = iter(range(1000))

    # WHEN the wait runs out (a clock of its own: no real waiting)
    with pytest.raises(smoke.SmokeError, match=r"did not succeed within 10 s \(its record: INPROGRESS\)") as error:
        smoke.wait_for_success(session.client("dynamodb"), TABLE, FUNCTION, event_id, 10,
                               clock=lambda: float(next(ticks)), sleep=lambda _: None)  # fmt: skip

    # THEN it names where to look
    assert FUNCTION in str(error.value) and "sqs-dlq peek" in str(error.value)


def test_smoke_without_the_deploys_outputs_says_what_writes_them(tmp_path, capsys):
    assert smoke.main(["--stage", "dev", "--outputs", str(tmp_path / "outputs-dev.json")]) == 1
    assert "make deploy writes it" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [[], ["--stage", "dev", "--timeout", "0"]])
def test_smoke_refuses_bad_arguments_with_status_2(argv):
    with pytest.raises(SystemExit) as exit_info:
        smoke.main(argv)
    assert exit_info.value.code == 2
