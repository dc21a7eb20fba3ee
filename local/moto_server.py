"""moto's server for the local pipeline, with its DynamoDB transactions and writes as DynamoDB makes them.

    python -m local.moto_server -H 127.0.0.1 -p PORT      (the arguments of moto_server)

Departures from AWS, mended here:
- moto's TransactWriteItems deep-copies each table it writes (to roll back), while the server's other
  threads write to the same table: concurrent transactions and batch writes then fail with HTTP 500
  ("dictionary changed size during iteration"), which DynamoDB never answers for that. One lock around
  moto's DynamoDB write operations restores isolation; SQS, long polls included, stays concurrent.
- that copy is of the whole table, once per item of the transaction: a claim of 100 events against a
  table of 10,000 copies a million items, and a batch of 10,000 records takes minutes (DynamoDB takes
  milliseconds). Under the lock a transaction can check every condition first and write only if all
  hold, as DynamoDB does, with nothing to roll back.
- moto's SendMessageBatch drops each entry's MessageSystemAttributes (the AWSTraceHeader), which its
  SendMessage keeps and SQS keeps on both: each entry's are handed to the message moto makes for it.
- an event source mapping created in moto's Lambda API ties itself to its queue: every SendMessage then
  receives a batch and tries to run the function in Docker, spending a receive of each message. Locally
  the mapping is a record that the emulated poller (local/event_source.py) reads; it delivers nothing.
  moto also accepts any ``ScalingConfig.MaximumConcurrency``; Lambda refuses one outside 2-1000, and so
  does this server.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from moto.awslambda.exceptions import InvalidParameterValueException
from moto.awslambda.models import EventSourceMapping, LambdaBackend
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.server import main
from moto.sqs.models import SQSBackend, sqs_backends

_WRITES = threading.RLock()
# The system attributes of the entries of the SendMessageBatch this thread is in, in order.
_BATCH = threading.local()
_WRITE_OPERATIONS = ("put_item", "update_item", "delete_item", "transact_write_items")
_OPERATIONS = {"ConditionCheck", "Put", "Delete", "Update"}
# Lambda's bounds of an SQS mapping's ScalingConfig.MaximumConcurrency.
MAXIMUM_CONCURRENCY = range(2, 1001)


def _isolated(operation: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(operation)
    def isolated(*args: Any, **kwargs: Any) -> Any:
        with _WRITES:
            return operation(*args, **kwargs)

    return isolated


def transact_write_items(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:  # noqa: PLR0912
    """All conditions checked against the table as it is, then all writes or none (DynamoDB's semantics)."""
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    writes: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = []
    errors: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
    targets: set[tuple[str, str]] = set()
    for transact_item in transact_items:
        if len(transact_item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(transact_item.items()))
        if op_type not in _OPERATIONS:
            errors.append(("ValueError", "Unsupported transaction operation", None))
            continue
        table_name = op["TableName"]
        if op_type == "Put":
            table = backend.get_table(table_name)
            key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = op["Item"][table.range_key_attr]
        else:
            key = op["Key"]
        target = (str(table_name), str(dict(sorted(key.items()))))
        if target in targets:
            raise MultipleTransactionsException()
        targets.add(target)
        current = backend.get_item(table_name, key)
        condition = op.get("ConditionExpression")
        if condition is not None and not get_filter_expression(
            condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
        ).expr(current):
            old = (
                current.to_json()["Attributes"]
                if current and op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
                else None
            )
            errors.append(("ConditionalCheckFailed", ConditionalCheckFailed().message, old))
            continue
        errors.append((None, None, None))
        writes.append((op_type, op, table_name, key))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)
    for op_type, op, table_name, key in writes:
        names, values = op.get("ExpressionAttributeNames") or {}, op.get("ExpressionAttributeValues") or {}
        if op_type == "Put":
            backend.put_item(table_name, op["Item"])
        elif op_type == "Delete":
            backend.delete_item(table_name, key)
        elif op_type == "Update":
            backend.update_item(table_name, key, update_expression=op["UpdateExpression"],
                                expression_attribute_names=names, expression_attribute_values=values)  # fmt: skip


def isolate_dynamodb_writes() -> None:
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign,assignment]
    for name in _WRITE_OPERATIONS:
        setattr(DynamoDBBackend, name, _isolated(getattr(DynamoDBBackend, name)))


def keep_batch_system_attributes() -> None:
    """SendMessageBatch keeps each entry's MessageSystemAttributes, as SQS does (idempotent)."""
    if getattr(SQSBackend.send_message_batch, "keeps_system_attributes", False):
        return
    send_batch, send_one = SQSBackend.send_message_batch, SQSBackend.send_message

    @functools.wraps(send_batch)
    def send_message_batch(self: SQSBackend, queue_name: str, entries: dict[str, dict[str, Any]]) -> Any:
        # moto sends the entries one by one, in order, through send_message, without their system attributes.
        _BATCH.pending = iter([entry.get("MessageSystemAttributes") for entry in entries.values()])
        try:
            return send_batch(self, queue_name, entries)
        finally:
            _BATCH.pending = None

    @functools.wraps(send_one)
    def send_message(self: SQSBackend, *args: Any, **kwargs: Any) -> Any:
        pending = getattr(_BATCH, "pending", None)
        if pending is not None and kwargs.get("system_attributes") is None:
            kwargs["system_attributes"] = next(pending, None)
        return send_one(self, *args, **kwargs)

    send_message_batch.keeps_system_attributes = True  # type: ignore[attr-defined]
    SQSBackend.send_message_batch = send_message_batch  # type: ignore[method-assign]
    SQSBackend.send_message = send_message  # type: ignore[method-assign]


def check_scaling(spec: dict[str, Any]) -> None:
    """Lambda's answer to a MaximumConcurrency outside 2-1000."""
    value = (spec.get("ScalingConfig") or {}).get("MaximumConcurrency")
    if value is not None and value not in MAXIMUM_CONCURRENCY:
        raise InvalidParameterValueException(
            f"1 validation error detected: Value {value} at 'scalingConfig.maximumConcurrency' failed to satisfy "
            "constraint: Member must have value between 2 and 1000"
        )


def _checked_update(update: Callable[..., EventSourceMapping | None]) -> Callable[..., EventSourceMapping | None]:
    @functools.wraps(update)
    def update_mapping(backend: LambdaBackend, uuid: str, spec: dict[str, Any]) -> EventSourceMapping | None:
        check_scaling(spec)
        return update(backend, uuid, spec)

    return update_mapping


def _record_only(create: Callable[..., EventSourceMapping]) -> Callable[..., EventSourceMapping]:
    @functools.wraps(create)
    def create_mapping(backend: LambdaBackend, spec: dict[str, Any]) -> EventSourceMapping:
        check_scaling(spec)
        mapping = create(backend, spec)
        for queue in sqs_backends[backend.account_id][backend.region_name].queues.values():
            if queue.lambda_event_source_mappings.get(mapping.function_arn) is mapping:
                del queue.lambda_event_source_mappings[mapping.function_arn]
        return mapping

    return create_mapping


def mappings_as_records() -> None:
    """Event source mappings that moto keeps and answers for, but never delivers through."""
    LambdaBackend.create_event_source_mapping = _record_only(LambdaBackend.create_event_source_mapping)  # type: ignore[method-assign]
    LambdaBackend.update_event_source_mapping = _checked_update(LambdaBackend.update_event_source_mapping)  # type: ignore[method-assign]


if __name__ == "__main__":
    isolate_dynamodb_writes()
    keep_batch_system_attributes()
    mappings_as_records()
    main()
