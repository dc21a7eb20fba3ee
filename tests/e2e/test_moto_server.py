"""The local moto server answers concurrent DynamoDB transactions and batch writes as DynamoDB does."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from local.sqs_server import SqsServer, dynamodb_client

pytestmark = pytest.mark.e2e


def test_concurrent_transactions_and_batch_writes_all_succeed(tmp_path):
    server = SqsServer(tmp_path / "moto.log")
    try:
        client = dynamodb_client(server.endpoint_url)
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )

        def transaction(n: int) -> None:
            client.transact_write_items(TransactItems=[
                {"Put": {"TableName": "t", "Item": {"id": {"S": f"tx-{n}-{i}"}},
                         "ConditionExpression": "attribute_not_exists(id)"}} for i in range(100)])  # fmt: skip

        def batch_write(n: int) -> None:
            client.batch_write_item(
                RequestItems={"t": [{"PutRequest": {"Item": {"id": {"S": f"bw-{n}-{i}"}}}} for i in range(25)]}
            )

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(transaction, n) for n in range(4)] + [pool.submit(batch_write, n) for n in range(8)]
            for future in futures:
                future.result()
        assert client.scan(TableName="t", Select="COUNT")["Count"] == 4 * 100 + 8 * 25
    finally:
        server.stop()


def test_a_transaction_with_a_failed_condition_writes_nothing_and_says_which(tmp_path):
    server = SqsServer(tmp_path / "moto.log")
    try:
        client = dynamodb_client(server.endpoint_url)
        client.create_table(TableName="t", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                            BillingMode="PAY_PER_REQUEST")  # fmt: skip
        client.put_item(TableName="t", Item={"id": {"S": "taken"}, "v": {"S": "old"}})

        def put(key: str) -> Any:
            return {"Put": {"TableName": "t", "Item": {"id": {"S": key}, "v": {"S": "new"}},
                            "ConditionExpression": "attribute_not_exists(id)",
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}  # fmt: skip

        with pytest.raises(client.exceptions.TransactionCanceledException) as refused:
            client.transact_write_items(TransactItems=[put("free"), put("taken")])

        reasons = refused.value.response["CancellationReasons"]
        assert [reason["Code"] for reason in reasons] == ["None", "ConditionalCheckFailed"]
        assert reasons[1]["Item"] == {"id": {"S": "taken"}, "v": {"S": "old"}}
        assert "Item" not in client.get_item(TableName="t", Key={"id": {"S": "free"}})
        client.transact_write_items(TransactItems=[put("free"), put("other")])
        assert client.scan(TableName="t", Select="COUNT")["Count"] == 3
    finally:
        server.stop()


def test_publisher_tenant_field_sets_message_group_id_on_a_standard_queue(tmp_path, monkeypatch):
    # GIVEN a standard queue on the local moto server (any credentials do)
    from publisher.__main__ import main as sqs_publish

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    server = SqsServer(tmp_path / "moto.log")
    try:
        client = server.client()
        url = client.create_queue(QueueName="tenants")["QueueUrl"]
        payloads = [{"document_id": "d", "tenant_id": f"tenant-{i % 3}"} for i in range(6)]
        events = [json.dumps({"event_id": f"e{i}", "event_type": "document.processed", "payload": payload})
                  for i, payload in enumerate(payloads)]  # fmt: skip

        # WHEN sqs-publish sends them with --tenant-field
        code = sqs_publish(["--queue-url", url, "--endpoint-url", server.endpoint_url, "--region", "us-east-1",
                            "--tenant-field", "tenant_id", *events])  # fmt: skip

        # THEN every message carries its tenant as MessageGroupId
        assert code == 0
        received: dict[str, str] = {}
        while len(received) < 6:
            answer = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                            MessageSystemAttributeNames=["MessageGroupId"])  # fmt: skip
            messages = answer.get("Messages", [])
            assert messages, f"only {len(received)} of 6 messages came back"
            for message in messages:
                event_id = json.loads(message["Body"])["event_id"]
                received[event_id] = message["Attributes"]["MessageGroupId"]
        assert received == {f"e{i}": f"tenant-{i % 3}" for i in range(6)}
    finally:
        server.stop()
