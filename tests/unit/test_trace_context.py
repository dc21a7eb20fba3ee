"""X-Ray trace headers: parsed leniently (a header is a hint), made valid, their trace id read fast."""

from __future__ import annotations

from typing import Any, cast

import pytest

from sqs_consumer.models.record import RecordInfo
from sqs_consumer.models.trace import TraceHeader, current, for_message, trace_id

HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def test_trace_header_round_trips_and_keeps_its_fields():
    header = TraceHeader.parse(HEADER)
    assert header == TraceHeader("1-5759e988-bd862e3fe1be46a994272793", "53995c3f42cd8ad8", True)
    assert str(header) == HEADER


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "Root=",
        "Root=1-5759e988-bd862e3f",
        "Root=2-5759e988-bd862e3fe1be46a994272793",
        "Parent=53995c3f42cd8ad8",
    ],
)
def test_trace_header_that_is_not_one_is_none_never_an_error(text):
    assert TraceHeader.parse(text) is None
    assert trace_id(text) is None


def test_trace_id_is_read_wherever_root_stands_and_with_lineage():
    text = "Parent=53995c3f42cd8ad8;Sampled=0;Root=1-5759e988-bd862e3fe1be46a994272793;Lineage=a87bd80c:0"
    assert trace_id(text) == "1-5759e988-bd862e3fe1be46a994272793"
    parsed = TraceHeader.parse(text)
    assert parsed is not None and parsed.sampled is False


def test_new_trace_starts_with_the_time_in_hex():
    header = TraceHeader.new(clock=lambda: 0x6942A1B0, random_hex=lambda n: "a" * (2 * n))
    assert str(header) == "Root=1-6942a1b0-aaaaaaaaaaaaaaaaaaaaaaaa;Parent=aaaaaaaaaaaaaaaa;Sampled=0"


def test_for_message_takes_the_current_trace_else_a_new_valid_one():
    assert for_message({"_X_AMZN_TRACE_ID": HEADER}) == HEADER
    assert current({"_X_AMZN_TRACE_ID": "garbage"}) is None
    made = TraceHeader.parse(for_message({}))
    assert made is not None and made.parent is not None and made.sampled is False
    assert for_message({}) != for_message({})


def test_record_info_reads_its_trace_from_the_record_attributes():
    info = RecordInfo({"messageId": "m-1", "attributes": {"AWSTraceHeader": HEADER}})
    assert info.trace_header == HEADER
    assert info.trace_id == "1-5759e988-bd862e3fe1be46a994272793"
    assert RecordInfo({"messageId": "m-2"}).trace_id is None


def test_publisher_refuses_a_fixed_trace_header_sqs_would_refuse():
    from publisher.client import EventPublisher

    with pytest.raises(ValueError, match="not an X-Ray trace header"):
        EventPublisher("https://sqs.us-east-1.amazonaws.com/123456789012/q", client=cast(Any, None),
                       trace_header="Root=oops")  # fmt: skip
