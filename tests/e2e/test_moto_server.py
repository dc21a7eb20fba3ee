"""The local moto server answers concurrent DynamoDB transactions and batch writes as DynamoDB does."""

from __future__ import annotations

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
