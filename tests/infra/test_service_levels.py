"""Per-route service levels become alarms per event type on the EMF value arrays; the dashboard shows p99 per type."""

from __future__ import annotations

import json
import re

import pytest
from aws_cdk.assertions import Template

from sqs_consumer.handlers.hello import handle_hello
from sqs_consumer.models import HelloEvent
from sqs_consumer.routes import REGISTRY


def _alarms(template: Template) -> dict[str, dict]:
    return {
        alarm["Properties"]["AlarmDescription"]: alarm["Properties"]
        for alarm in template.find_resources("AWS::CloudWatch::Alarm").values()
    }


def test_a_route_with_service_levels_gets_a_p99_alarm_and_an_age_alarm_on_its_own_type(template: Template):
    # GIVEN the registry's routes, document.processed with service levels and hello without
    route = REGISTRY.routes["document.processed"]
    assert route.slo_p99_ms is not None and route.slo_max_age_s is not None
    assert REGISTRY.routes["hello"].slo_p99_ms is None

    # THEN the synthesized template alarms on each level of that type, and on nothing of hello's
    per_type = {d: a for d, a in _alarms(template).items() if "Dimensions" in a and a.get("Namespace")}
    p99s = [a for a in per_type.values() if a.get("ExtendedStatistic") == "p99"]
    ages = [a for a in per_type.values() if a.get("MetricName") == "MessageAge"]
    assert len(p99s) == len(ages) == 1
    [p99], [age] = p99s, ages
    assert p99["MetricName"] == "ProcessingTime"
    assert p99["Threshold"] == route.slo_p99_ms
    assert age["Statistic"] == "Maximum" and age["Threshold"] == route.slo_max_age_s * 1000
    for alarm in (p99, age):
        assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
            "event_type": "document.processed",
            "service": "sqs-consumer",
        }
        assert alarm["Namespace"] == "SqsConsumer/dev"
        assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (300, 3, 2)
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"


def test_the_dashboard_shows_p99_per_event_type(template: Template):
    [dashboard] = template.find_resources("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for metric in ("ProcessingTime", "MessageAge"):
        # SEARCH('{namespace,event_type,service} MetricName="<metric>" service="..."', 'p99', 60): a line a type
        assert re.search(rf"MetricName=\W+{metric}\W+ service=\W+sqs-consumer\W+, 'p99', 60\)", body), metric
    assert "ProcessingTimeMax" not in body


@pytest.mark.parametrize("field", ["slo_p99_ms", "slo_max_age_s"])
def test_a_service_level_that_is_not_positive_is_refused_where_the_route_is_declared(field):
    from sqs_consumer.registry import Route

    with pytest.raises(ValueError, match=f"HelloEvent: {field} must be > 0"):
        Route(HelloEvent, handle_hello, **{field: 0})  # type: ignore[arg-type]
