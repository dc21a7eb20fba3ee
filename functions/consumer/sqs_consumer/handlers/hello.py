"""Handler for ``hello``: shows every disposition on demand (DESIGN.md §3)."""

from __future__ import annotations

import asyncio

from sqs_consumer.errors import RetryableError
from sqs_consumer.models.hello import HelloEvent
from sqs_consumer.observability import logger
from sqs_consumer.registry import RecordInfo


async def handle_hello(event: HelloEvent, record: RecordInfo) -> None:
    simulate = event.payload.simulate
    if simulate == "slow":
        # An awaited sleep: other records of the batch run meanwhile.
        await asyncio.sleep(event.payload.delay_ms / 1000)
    elif simulate == "flaky" and record.receive_count <= 1:
        raise RetryableError("simulated transient failure on the first receive")
    elif simulate == "fail":
        raise RetryableError("simulated failure on every receive")
    logger.debug("Hello", greeted=event.payload.name, event_id=event.event_id)
