"""The stand-in orders API records each call and, taken down, fails the function's HTTP helper as an
outage does: a connection error (or a 503), classified as the dependency being unavailable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.orders_api import OrdersApi
from sqs_consumer.errors import DependencyUnavailable
from sqs_consumer.http import post_json


@pytest.fixture
def started() -> Iterator[list[OrdersApi]]:
    apis: list[OrdersApi] = []
    yield apis
    for api in apis:
        api.stop()


def stand_in(started: list[OrdersApi], outage: str) -> OrdersApi:
    api = OrdersApi(outage=outage).start()
    started.append(api)
    return api


def order(api: OrdersApi, key: str) -> int:
    return post_json("orders-api", api.url, {"order_id": key}, {"Idempotency-Key": key}, timeout=5).status


def test_up_it_accepts_orders_and_records_their_idempotency_keys(started):
    api = stand_in(started, "reset")
    assert order(api, "evt_1") == 201
    assert order(api, "evt_1") == 201
    assert [(call.method, call.idempotency_key, call.status, call.down) for call in api.calls] == [
        ("POST", "evt_1", 201, False),
        ("POST", "evt_1", 201, False),
    ]


@pytest.mark.parametrize("outage", ["reset", "503"])
def test_down_it_fails_each_call_as_unavailable_and_counts_it(started, outage):
    api = stand_in(started, outage)
    api.take_down()
    with pytest.raises(DependencyUnavailable) as raised:
        order(api, "evt_2")
    assert raised.value.dependency == "orders-api"
    [call] = api.calls
    assert (call.idempotency_key, call.down) == ("evt_2", True)
    assert call.status == (None if outage == "reset" else 503)

    api.bring_back()
    assert order(api, "evt_2") == 201
    assert [call.down for call in api.calls] == [True, False]
    [(down_at, up_at)] = api.outages
    assert up_at is not None and up_at >= down_at


def test_refusing_it_closes_its_port_and_comes_back_on_the_same_one(started):
    api = stand_in(started, "refuse")
    url = api.url
    api.take_down()
    with pytest.raises(DependencyUnavailable, match="refused"):
        order(api, "evt_3")
    assert api.calls == []  # a refused connection leaves no trace on the server

    api.bring_back()
    assert api.url == url
    assert order(api, "evt_3") == 201


def test_an_unknown_outage_mode_is_refused():
    with pytest.raises(ValueError, match="reset, refuse, 503"):
        OrdersApi(outage="slow")
