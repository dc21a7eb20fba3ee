"""moto's server for the local pipeline, with its DynamoDB writes isolated as DynamoDB isolates them.

    python -m local.moto_server -H 127.0.0.1 -p PORT      (the arguments of moto_server)

moto's TransactWriteItems deep-copies each table it writes (to roll back), while the server's other
threads write to the same table: concurrent transactions and batch writes then fail with HTTP 500
("dictionary changed size during iteration"), which DynamoDB never answers for that. One lock around
moto's DynamoDB write operations restores isolation; SQS, long polls included, stays concurrent.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

_WRITES = threading.RLock()
_WRITE_OPERATIONS = ("put_item", "update_item", "delete_item", "transact_write_items")


def _isolated(operation: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(operation)
    def isolated(*args: Any, **kwargs: Any) -> Any:
        with _WRITES:
            return operation(*args, **kwargs)

    return isolated


def isolate_dynamodb_writes() -> None:
    for name in _WRITE_OPERATIONS:
        setattr(DynamoDBBackend, name, _isolated(getattr(DynamoDBBackend, name)))


if __name__ == "__main__":
    isolate_dynamodb_writes()
    main()
