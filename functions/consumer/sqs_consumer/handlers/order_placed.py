"""Handler for ``order.placed``: POSTs the order to the orders API, a dependency with a circuit breaker.

The API may see an order twice (a retry after a lost answer, a copy sent again while its breaker was
open): the ``Idempotency-Key`` header, the event's id, lets it answer the second time as the first.
A connection error, a timeout, a 429 or a 5xx raise ``DependencyUnavailable("orders-api")`` (the record
is retried and the breaker counts it); any other 4xx quarantines the record as ``non_retryable``.
"""

from __future__ import annotations

from sqs_consumer.errors import NonRetryableError
from sqs_consumer.http import post_json
from sqs_consumer.models.order_placed import OrderPlacedEvent
from sqs_consumer.models.record import RecordInfo
from sqs_consumer.settings import get_orders_api_settings

ORDERS_API = "orders-api"
TIMEOUT_SECONDS = 5.0


def handle_order_placed(event: OrderPlacedEvent, record: RecordInfo) -> None:
    url = get_orders_api_settings().orders_api_url
    if url is None:
        raise NonRetryableError("ORDERS_API_URL is not set: the stage's orders_api_url names the orders API")
    post_json(ORDERS_API, url, event.payload, {"Idempotency-Key": event.event_id}, timeout=TIMEOUT_SECONDS)
