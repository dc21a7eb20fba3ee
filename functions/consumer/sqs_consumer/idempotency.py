"""Exactly-once effects per business ``event_id`` (SQS delivers at least once).

Built on the Powertools idempotency persistence layer (DynamoDB). Its decorators
cannot wrap async handlers, so the consumer drives the three steps itself:

- ``begin``: write an in-progress record keyed on ``event_id`` that expires with the
  function's remaining time. An event already completed is a duplicate: acknowledged
  without running its handler. One still in progress elsewhere raises, so the copy is
  retried, not dropped.
- ``succeed``: mark it completed; the record lives ``expires_after_seconds`` (the stack
  sets queue retention + DLQ retention, so a redriven copy is still recognised).
- ``release``: delete the in-progress record after a failure, so the retry may run.

The persistence layer (and boto3) is created on first use, never at import.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from sqs_consumer.models.base import BaseEvent
from sqs_consumer.observability import logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer

# The namespace of the keys: "<function>#<md5 of event_id>".
KEY_NAMESPACE = "sqs_consumer.events"


class EventInProgressError(Exception):
    """Another execution is processing the same event_id: retry later."""


class Idempotency(Protocol):
    def begin(self, event: BaseEvent, remaining_ms: int) -> bool:
        """True: run the handler. False: a duplicate of a completed event. Raises if in progress."""

    def succeed(self, event: BaseEvent) -> None: ...

    def release(self, event: BaseEvent, error: Exception) -> None: ...


def dynamodb_persistence(table_name: str, expires_after_seconds: int) -> BasePersistenceLayer:
    from aws_lambda_powertools.utilities.idempotency import (  # noqa: PLC0415  # deferred: imports boto3
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
    )

    persistence = DynamoDBPersistenceLayer(table_name=table_name)
    config = IdempotencyConfig(event_key_jmespath="event_id", expires_after_seconds=expires_after_seconds)
    persistence.configure(config, function_name=KEY_NAMESPACE)
    return persistence


class PowertoolsIdempotency:
    def __init__(self, persistence_factory: Callable[[], BasePersistenceLayer]) -> None:
        self._factory = persistence_factory
        self._persistence: BasePersistenceLayer | None = None

    def _store(self) -> BasePersistenceLayer:
        if self._persistence is None:
            self._persistence = self._factory()
        return self._persistence

    @staticmethod
    def _data(event: BaseEvent) -> dict[str, Any]:
        return {"event_id": event.event_id}

    def begin(self, event: BaseEvent, remaining_ms: int) -> bool:
        from aws_lambda_powertools.utilities.idempotency.exceptions import (  # noqa: PLC0415
            IdempotencyItemAlreadyExistsError,
        )
        from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import (  # noqa: PLC0415
            STATUS_CONSTANTS,
        )

        store = self._store()
        try:
            store.save_inprogress(data=self._data(event), remaining_time_in_millis=remaining_ms)
        except IdempotencyItemAlreadyExistsError as exists:
            record = exists.old_data_record or store.get_record(data=self._data(event))
            if record is not None and record.status == STATUS_CONSTANTS["COMPLETED"]:
                return False
            now_ms = int(dt.datetime.now().timestamp() * 1000)
            expiry = record.in_progress_expiry_timestamp if record is not None else None
            raise EventInProgressError(
                f"event_id {event.event_id!r} is being processed elsewhere"
                + (f" (in-progress record expires in {(expiry - now_ms) / 1000:.0f} s)" if expiry else "")
            ) from None
        return True

    def succeed(self, event: BaseEvent) -> None:
        try:
            self._store().save_success(data=self._data(event), result={})
        except Exception as exc:  # the effect happened; the in-progress record expires with the timeout
            logger.error("Could not mark event completed", event_id=event.event_id, error=str(exc))

    def release(self, event: BaseEvent, error: Exception) -> None:
        try:
            self._store().delete_record(data=self._data(event), exception=error)
        except Exception as exc:  # the in-progress record expires with the function's timeout instead
            logger.error("Could not release in-progress event", event_id=event.event_id, error=str(exc))
