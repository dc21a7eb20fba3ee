"""Where the breakers' state lives: one item per dependency, shared by every instance of the function.

The port (``BreakerStore``), an in-memory twin for unit tests, and the DynamoDB adapter. The items sit in
the idempotency table under keys of their own (``dependency#<name>``: never a Powertools key, which is
``<function>.<namespace>#<md5>``), without an expiry: the table's TTL leaves them alone
(docs/decisions/057-dependency-breaker.md). Each write is conditional on the version read, so two
instances that both saw the threshold reached make one transition, not two.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from sqs_consumer.dependencies.breaker import CLOSED, BreakerMode, BreakerState

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

KEY_PREFIX = "dependency#"
KEY_ATTR = "id"


class BreakerStore(Protocol):
    def read(self, names: Sequence[str]) -> dict[str, BreakerState]:
        """Each dependency's state (``CLOSED``, version 0, for one never written)."""
        ...

    def write(self, name: str, expected_version: int, state: BreakerState) -> BreakerState | None:
        """Write ``state`` if the stored one is still at ``expected_version``: None when written, else the
        state found instead (another instance changed it first)."""
        ...


class InMemoryBreakerStore:
    """The store's twin for unit tests: the same conditional writes, in a dict, thread-safe; counts its calls."""

    def __init__(self) -> None:
        self.states: dict[str, BreakerState] = {}
        self.reads = 0
        self.writes = 0
        self._lock = threading.Lock()

    def read(self, names: Sequence[str]) -> dict[str, BreakerState]:
        with self._lock:
            self.reads += 1
            return {name: self.states.get(name, CLOSED) for name in names}

    def write(self, name: str, expected_version: int, state: BreakerState) -> BreakerState | None:
        with self._lock:
            self.writes += 1
            current = self.states.get(name, CLOSED)
            if current.version != expected_version:
                return current
            self.states[name] = state
            return None


class DynamoDBBreakerStore:
    """The breakers' items in a DynamoDB table: one ``BatchGetItem`` (strongly consistent) a read, one
    conditional ``PutItem`` a change."""

    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self.table_name = table_name
        self.client = client

    def read(self, names: Sequence[str]) -> dict[str, BreakerState]:
        if not names:
            return {}
        answer = self.client.batch_get_item(
            RequestItems={self.table_name: {"Keys": [key(name) for name in names], "ConsistentRead": True}}
        )
        if answer.get("UnprocessedKeys"):
            raise RuntimeError("the breakers' items were not all read (throttled)")
        found = {item[KEY_ATTR]["S"].removeprefix(KEY_PREFIX): item for item in answer["Responses"][self.table_name]}
        return {name: state_of(found[name]) if name in found else CLOSED for name in names}

    def write(self, name: str, expected_version: int, state: BreakerState) -> BreakerState | None:
        from botocore.exceptions import ClientError  # noqa: PLC0415  # deferred: botocore

        condition = "#v = :v" if expected_version else "attribute_not_exists(#id) OR #v = :v"
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=item_of(name, state),
                ConditionExpression=condition,
                ExpressionAttributeNames={"#v": "version", "#id": KEY_ATTR}
                if not expected_version
                else {"#v": "version"},
                ExpressionAttributeValues={":v": {"N": str(expected_version)}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            item: Any = exc.response.get("Item")  # the item that refused the write (ALL_OLD)
            return state_of(item) if item else self.read([name])[name]
        return None


def key(name: str) -> dict[str, Any]:
    return {KEY_ATTR: {"S": f"{KEY_PREFIX}{name}"}}


def item_of(name: str, state: BreakerState) -> dict[str, Any]:
    item: dict[str, Any] = {
        **key(name),
        "mode": {"S": state.mode.value},
        "failures": {"N": str(state.failures)},
        "window_started_at": {"N": repr(state.window_started_at)},
        "cool_down_seconds": {"N": repr(state.cool_down_seconds)},
        "version": {"N": str(state.version)},
        "changed_by": {"S": state.changed_by or "-"},
        "reason": {"S": (state.reason or "-")[:1024]},
    }
    if state.opened_at is not None:
        item["opened_at"] = {"N": repr(state.opened_at)}
    if state.probe_at is not None:
        item["probe_at"] = {"N": repr(state.probe_at)}
    if state.trial_at is not None:
        item["trial_at"] = {"N": repr(state.trial_at)}
    return item


def state_of(item: dict[str, Any]) -> BreakerState:
    def number(name: str) -> float | None:
        return float(item[name]["N"]) if name in item else None

    return BreakerState(
        mode=BreakerMode(item["mode"]["S"]),
        failures=int(item["failures"]["N"]),
        window_started_at=number("window_started_at") or 0.0,
        opened_at=number("opened_at"),
        probe_at=number("probe_at"),
        cool_down_seconds=number("cool_down_seconds") or 0.0,
        version=int(item["version"]["N"]),
        changed_by=_text(item, "changed_by"),
        reason=_text(item, "reason"),
        trial_at=number("trial_at"),
    )


def _text(item: dict[str, Any], name: str) -> str:
    value = str(item.get(name, {}).get("S", ""))
    return "" if value == "-" else value  # DynamoDB refuses an empty string in a key-less attribute of old
