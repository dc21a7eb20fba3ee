"""post_json against a stand-in service on loopback: each kind of failure classified for the pipeline."""

from __future__ import annotations

import socket

import pytest

from sqs_consumer.errors import DependencyUnavailable, NonRetryableError
from sqs_consumer.http import DownstreamRefusedError, post_json, retry_after_seconds
from tests.support.orders_api import orders_api


def test_post_json_sends_json_and_headers_and_answers_the_response():
    with orders_api(201) as api:
        response = post_json("orders-api", api.url, {"order_id": "o-1"}, {"Idempotency-Key": "evt_1"})

    assert response.status == 201
    assert response.json() == {"status": 201}
    assert [(call.body, call.idempotency_key) for call in api.calls] == [({"order_id": "o-1"}, "evt_1")]


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429, 408])
def test_post_json_server_errors_and_throttling_are_unavailable(status: int):
    with orders_api(status) as api:
        api.headers["Retry-After"] = "7"
        with pytest.raises(DependencyUnavailable) as raised:
            post_json("orders-api", api.url, {"order_id": "o-1"})

    assert raised.value.dependency == "orders-api"
    assert raised.value.retry_after == 7.0
    assert f"HTTP {status}" in str(raised.value)
    assert not isinstance(raised.value, NonRetryableError)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 301, 307])
def test_post_json_other_client_errors_and_redirects_are_non_retryable(status: int):
    with orders_api(status) as api:
        api.headers["Location"] = api.url + "/elsewhere"
        with pytest.raises(DownstreamRefusedError) as raised:
            post_json("orders-api", api.url, {"order_id": "o-1"})

    assert isinstance(raised.value, NonRetryableError)
    assert raised.value.status == status
    assert len(api.calls) == 1  # a redirect is not followed


def test_post_json_refused_connection_is_unavailable():
    # GIVEN a port nothing listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(DependencyUnavailable) as raised:
        post_json("orders-api", f"http://127.0.0.1:{port}/orders", {})

    assert raised.value.retry_after is None


def test_post_json_timeout_is_unavailable():
    # GIVEN a server that accepts the connection and never answers
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        with pytest.raises(DependencyUnavailable, match="timed out"):
            post_json("orders-api", f"http://127.0.0.1:{silent.getsockname()[1]}/orders", {}, timeout=0.2)


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("Sun, 06 Dec 2026 07:00:30 GMT", now=1796540400.0) == 30.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


@pytest.fixture
def orders_url(monkeypatch: pytest.MonkeyPatch):
    """The order.placed handler pointed at a stand-in orders API (its settings read again)."""
    from sqs_consumer.settings import get_orders_api_settings

    def point_at(url: str | None) -> None:
        if url is None:
            monkeypatch.delenv("ORDERS_API_URL", raising=False)
        else:
            monkeypatch.setenv("ORDERS_API_URL", url)
        get_orders_api_settings.cache_clear()

    yield point_at
    get_orders_api_settings.cache_clear()


ORDER = {"order_id": "o-1", "customer_id": "c-1", "lines": [{"sku": "s", "quantity": 2}]}


@pytest.mark.parametrize(("status", "outcome"), [(201, "succeeded"), (503, "failed"), (422, "non_retryable")])
def test_order_placed_posts_the_order_with_its_event_id_as_idempotency_key(orders_url, status: int, outcome: str):
    from sqs_consumer.testing import run_batch

    with orders_api(status) as api:
        orders_url(api.url)
        result = run_batch({"event_id": "evt_o1", "event_type": "order.placed", "payload": ORDER})

    assert [(call.body, call.idempotency_key) for call in api.calls] == [(ORDER, "evt_o1")]
    if outcome == "succeeded":
        assert result.succeeded == ["evt_o1"]
    elif outcome == "failed":
        assert result.listed == ["evt_o1"]  # retried: the service is down, not the order wrong
    else:
        assert result.quarantined["evt_o1"].kind == "non_retryable"


def test_order_placed_without_an_orders_api_url_is_quarantined_saying_so(orders_url):
    from sqs_consumer.testing import run_batch

    orders_url(None)
    result = run_batch({"event_id": "evt_o2", "event_type": "order.placed", "payload": ORDER})

    assert result.quarantined["evt_o2"].kind == "non_retryable"
    assert "ORDERS_API_URL" in str(result.quarantined["evt_o2"].reason)
