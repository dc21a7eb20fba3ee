"""Handler for ``hello``: shows every disposition on demand (docs/design.md §3)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from sqs_consumer.errors import RetryableError
from sqs_consumer.models.hello import HelloEvent
from sqs_consumer.models.record import RecordInfo
from sqs_consumer.observability import logger


def handle_hello(event: HelloEvent, record: RecordInfo) -> Awaitable[None] | None:
    simulate = event.payload.simulate
    if simulate == "slow":
        # Returned, not awaited here: the consumer awaits it while other records run.
        return _greet_later(event, record, event.payload.delay_ms / 1000)
    if simulate == "flaky" and record.receive_count <= 1:
        raise RetryableError("simulated transient failure on the first receive")
    if simulate == "fail":
        raise RetryableError("simulated failure on every receive")
    _greet(event, record)
    return None


async def _greet_later(event: HelloEvent, record: RecordInfo, delay_seconds: float) -> None:
    await asyncio.sleep(delay_seconds)
    _greet(event, record)


def _greet(event: HelloEvent, record: RecordInfo) -> None:
    # The handler's effect; the fault run counts these lines per event_id. (The level check
    # first: building a log line's keys costs more than validating the record.)
    if logger.log_level <= logging.DEBUG:
        logger.debug("Hello", greeted=event.payload.name, event_id=event.event_id, trace_id=record.trace_id)
