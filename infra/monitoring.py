"""Alarms, their SNS topic, and the dashboard of the seed's five metrics."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra import scanner_skips
from infra.consumer_function import ConsumerFunctionConstruct
from infra.queues import QueuesConstruct
from infra.settings import StackSettings, pascal_case
from sqs_consumer.observability import MESSAGE_AGE, PROCESSING_TIME
from sqs_consumer.registry import EventRegistry
from sqs_consumer.routes import REGISTRY

ONE_MINUTE = Duration.minutes(1)
FIVE_MINUTES = Duration.minutes(5)
# Duration and memory alarms fire at this share of the function's timeout and memory size.
NEAR_LIMIT = 0.9
RUNBOOK = "docs/runbook.md"
ABOVE = cw.ComparisonOperator.GREATER_THAN_THRESHOLD
AT_LEAST = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD


def runbook(section: str) -> str:
    return f"Runbook: {RUNBOOK}#{section}"


@dataclass(frozen=True)
class AlarmSpec:
    """One alarm, by name. The defaults are the common case: a single period above zero fires it,
    and a period without data (a count that nothing emitted) is no breach."""

    name: str
    description: str
    metric: cw.IMetric
    threshold: float = 0
    comparison_operator: cw.ComparisonOperator = ABOVE
    evaluation_periods: int = 1
    datapoints_to_alarm: int | None = None
    treat_missing_data: cw.TreatMissingData = cw.TreatMissingData.NOT_BREACHING

    def make(self, scope: Construct) -> cw.Alarm:
        return cw.Alarm(
            scope,
            self.name,
            alarm_description=self.description,
            metric=self.metric,
            threshold=self.threshold,
            comparison_operator=self.comparison_operator,
            evaluation_periods=self.evaluation_periods,
            datapoints_to_alarm=self.datapoints_to_alarm,
            treat_missing_data=self.treat_missing_data,
        )


def dead_letter_queue_alarms(settings: StackSettings, queues: QueuesConstruct) -> list[AlarmSpec]:
    """What reaches the DLQ, and how long it waits there."""
    dlq = queues.dead_letter_queue
    # A standard queue's DLQ keeps each message's first enqueue time: its age and its expiry
    # both count from there.
    age_limit = settings.dlq_retention_period_seconds // 2
    # A gap in the DLQ's metrics says nothing about its backlog: the backlog alarms keep their state.
    keep_state = cw.TreatMissingData.IGNORE
    return [
        AlarmSpec(
            "DeadLetterQueueNotEmpty",
            "Messages are in the DLQ: quarantined or out of retries. Inspect and redrive. " + runbook("dlq-filling"),
            dlq.metric_approximate_number_of_messages_visible(period=ONE_MINUTE, statistic="Maximum"),
            treat_missing_data=keep_state,
        ),
        AlarmSpec(
            "DeadLetterQueueMessagesAging",
            f"A message has waited in the DLQ more than half its retention ({age_limit} s of "
            f"{settings.dlq_retention_period_seconds} s): redrive or drop it before SQS deletes it unseen. "
            + runbook("dlq-messages-aging"),
            dlq.metric_approximate_age_of_oldest_message(period=FIVE_MINUTES, statistic="Maximum"),
            threshold=age_limit,
            treat_missing_data=keep_state,
        ),
        AlarmSpec(
            "DeadLetterQueueArrivals",
            "New messages reached the DLQ in the last minute (every quarantine is a SendMessage, so each "
            "arrival notifies, even while the backlog alarm stays in ALARM). Moves by SQS's own redrive "
            "(a crash or timeout on the last receive) are not counted here; the backlog alarm covers them. "
            + runbook("new-dlq-arrivals"),
            dlq.metric_number_of_messages_sent(period=ONE_MINUTE, statistic="Sum"),
        ),
    ]


def breaker_metric(settings: StackSettings, name: str, statistic: str = "Maximum") -> cw.Metric:
    """A breaker metric under the service alone (dependencies/board.py writes both dimension sets): one series,
    whatever dependencies the code declares."""
    return cw.Metric(
        namespace=settings.metrics_namespace,
        metric_name=name,
        dimensions_map={"service": settings.service_name},
        statistic=statistic,
        period=ONE_MINUTE,
    )


def breaker_alarms(settings: StackSettings) -> list[AlarmSpec]:
    """A dependency's breaker open for longer than the stage allows (each probe reports how long so far)."""
    if not settings.breakers:
        return []
    return [
        AlarmSpec(
            "DependencyBreakerOpen",
            f"A dependency's circuit breaker has been open for more than {settings.breaker_alarm_minutes} minutes: "
            "its records wait in the queue and the mapping is paused. " + runbook("a-downstream-is-down"),
            breaker_metric(settings, "BreakerOpenSeconds"),
            threshold=settings.breaker_alarm_minutes * 60,
            comparison_operator=AT_LEAST,
        )
    ]


def flow_alarms(
    settings: StackSettings, queues: QueuesConstruct, consumer: ConsumerFunctionConstruct
) -> list[AlarmSpec]:
    """Whether messages move: the queue's age, the function's errors and throttles, the mapping's polling."""
    queue, function = queues.queue, consumer.function
    visible = queue.metric_approximate_number_of_messages_visible(period=FIVE_MINUTES, statistic="Maximum")
    polled = consumer.metric_mapping("PolledEventCount", FIVE_MINUTES)
    return [
        AlarmSpec(
            "OldestMessageTooOld",
            "The queue is falling behind: its oldest message is older than the threshold. "
            + runbook("messages-not-processing"),
            queue.metric_approximate_age_of_oldest_message(period=ONE_MINUTE, statistic="Maximum"),
            threshold=settings.oldest_message_age_alarm_seconds,
            evaluation_periods=5,
            datapoints_to_alarm=3,
        ),
        AlarmSpec(
            "FunctionErrors",
            "The function itself failed (crash, timeout, bad deploy); record failures are reported "
            "in the batch response, not here. " + runbook("high-error-rate"),
            function.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
        ),
        AlarmSpec(
            "FunctionThrottles",
            "Invocations are throttled: throttled receives still count toward maxReceiveCount. "
            + runbook("throttling"),
            function.metric_throttles(period=FIVE_MINUTES, statistic="Sum"),
        ),
        AlarmSpec(
            "MappingNotPolling",
            "Messages wait but the event source mapping polls none (disabled, broken permissions or a "
            "deleted function). " + runbook("messages-not-processing"),
            _not_polling(settings, visible, polled),
            threshold=1,
            comparison_operator=AT_LEAST,
            evaluation_periods=3,
        ),
    ]


def near_limit_alarms(
    settings: StackSettings, consumer: ConsumerFunctionConstruct, max_memory_used: cw.IMetric
) -> list[AlarmSpec]:
    """An invocation close to the function's timeout or memory size: the next may go over."""
    return [
        AlarmSpec(
            "DurationNearTimeout",
            f"An invocation ran past {NEAR_LIMIT:.0%} of the {settings.function_timeout_seconds} s timeout: "
            "the next may time out and redeliver its whole batch. " + runbook("duration-near-timeout"),
            consumer.function.metric_duration(period=FIVE_MINUTES, statistic="Maximum"),
            threshold=settings.function_timeout_seconds * 1000 * NEAR_LIMIT,
            comparison_operator=AT_LEAST,
        ),
        AlarmSpec(
            "MemoryNearLimit",
            f"An invocation used more than {NEAR_LIMIT:.0%} of the {settings.function_memory_mb} MB memory "
            "(the seed's Worker Health): the next may run out. " + runbook("memory-near-limit"),
            max_memory_used,
            threshold=settings.function_memory_mb * NEAR_LIMIT,
            comparison_operator=AT_LEAST,
        ),
    ]


def service_level_alarms(settings: StackSettings, registry: EventRegistry) -> list[AlarmSpec]:
    """Each route's service levels (``slo_p99_ms``, ``slo_max_age_s``) as alarms on its own event type's
    value arrays: CloudWatch's p99 of its handler times, and the greatest age a record had when its batch
    started. Two 5-minute periods of three over the level fire one; a period without records is no breach."""
    records = RecordMetrics(settings)
    specs = []
    for event_type, route in registry.routes.items():
        name = pascal_case(event_type)
        if route.slo_p99_ms is not None:
            specs.append(AlarmSpec(
                f"{name}ProcessingTimeP99AboveSlo",
                f"{event_type}: the 99th percentile of its handler time is above its service level of "
                f"{route.slo_p99_ms:g} ms. " + runbook("service-level-missed"),
                records.of_event_type(PROCESSING_TIME, event_type, "p99"),
                threshold=route.slo_p99_ms, evaluation_periods=3, datapoints_to_alarm=2,
            ))  # fmt: skip
        if route.slo_max_age_s is not None:
            specs.append(AlarmSpec(
                f"{name}MessageAgeAboveSlo",
                f"{event_type}: a record waited longer than its service level of {route.slo_max_age_s:g} s "
                "before its batch started. " + runbook("service-level-missed"),
                records.of_event_type(MESSAGE_AGE, event_type, "Maximum"),
                threshold=route.slo_max_age_s * 1000, evaluation_periods=3, datapoints_to_alarm=2,
            ))  # fmt: skip
    return specs


class RecordMetrics:
    """The consumer's own metrics (EMF, one series per event_type) as the dashboard's expressions."""

    def __init__(self, settings: StackSettings) -> None:
        self.namespace = settings.metrics_namespace
        self.service = settings.service_name

    def of_event_type(self, metric_name: str, event_type: str, statistic: str) -> cw.Metric:
        """One event type's series, as its EMF documents name it (dimensions event_type and service)."""
        return cw.Metric(namespace=self.namespace, metric_name=metric_name, statistic=statistic, period=FIVE_MINUTES,
                         dimensions_map={"event_type": event_type, "service": self.service})  # fmt: skip

    def search(self, metric_name: str, statistic: str) -> str:
        # One series per event_type: the consumer emits metrics with that dimension.
        return (
            f'SEARCH(\'{{{self.namespace},event_type,service}} MetricName="{metric_name}" '
            f"service=\"{self.service}\"', '{statistic}', 60)"
        )

    # Zero counts are left out of the EMF documents: FILL draws them as 0.
    def per_event_type(self, metric_name: str, statistic: str = "Sum") -> cw.MathExpression:
        return self._expression(f"FILL({self.search(metric_name, statistic)}, 0)", metric_name)

    def total(self, metric_name: str) -> cw.MathExpression:
        return self._expression(f"FILL(SUM({self.search(metric_name, 'Sum')}), 0)", metric_name)

    def error_rate(self) -> cw.MathExpression:
        return cw.MathExpression(
            expression="IF(processed + failed + quarantined > 0, "
            "100 * (failed + quarantined) / (processed + failed + quarantined), 0)",
            using_metrics={
                "processed": self.total("RecordsProcessed"),
                "failed": self.total("RecordsFailed"),
                "quarantined": self.total("RecordsQuarantined"),
            },
            label="Record error rate (%)",
            period=ONE_MINUTE,
        )

    @staticmethod
    def _expression(text: str, label: str) -> cw.MathExpression:
        return cw.MathExpression(expression=text, using_metrics={}, label=label, period=ONE_MINUTE)


def dashboard(
    scope: Construct,
    *,
    settings: StackSettings,
    queues: QueuesConstruct,
    consumer: ConsumerFunctionConstruct,
    max_memory_used: cw.IMetric,
    alarms: list[cw.Alarm],
) -> cw.Dashboard:
    """The seed's five metrics, numbered, then the mapping, concurrency and the alarms' states: a row each call."""
    board = cw.Dashboard(scope, "Dashboard", default_interval=Duration.hours(3))
    records, function = RecordMetrics(settings), consumer.function
    board.add_widgets(*messages_and_processing_time(records, function))
    board.add_widgets(*queue_depth_and_error_rate(queues, records, function))
    board.add_widgets(*worker_health(settings, function, max_memory_used))
    if settings.breakers:
        board.add_widgets(*breakers_row(settings))
    board.add_widgets(*mapping_concurrency_and_alarms(queues, consumer, alarms))
    return board


def messages_and_processing_time(records: RecordMetrics, function: lambda_.Function) -> list[cw.IWidget]:
    """The seed's first two metrics: records by outcome, and how long each event type's records take."""
    return [
        cw.GraphWidget(
            title="1. Messages processed (per event type)",
            left=[records.per_event_type("RecordsProcessed")],
            right=[
                records.per_event_type("RecordsFailed"),
                records.per_event_type("RecordsQuarantined"),
                records.per_event_type("RecordsSkippedByDeadline"),
            ],
            width=12,
        ),
        cw.GraphWidget(
            title="2. Processing time per event type (ms): p99, mean, max",
            left=[
                records.per_event_type(PROCESSING_TIME, "p99"),
                records.per_event_type(PROCESSING_TIME, "Average"),
                records.per_event_type(PROCESSING_TIME, "Maximum"),
            ],
            right=[function.metric_duration(statistic="p90", period=ONE_MINUTE)],
            width=12,
        ),
    ]


def queue_depth_and_error_rate(
    queues: QueuesConstruct, records: RecordMetrics, function: lambda_.Function
) -> list[cw.IWidget]:
    """The seed's third and fourth metrics: the queues' depth and age, and the records' error rate."""
    return [
        cw.GraphWidget(
            title="3. Queue depth",
            left=[
                queues.queue.metric_approximate_number_of_messages_visible(period=ONE_MINUTE),
                queues.queue.metric_approximate_number_of_messages_not_visible(period=ONE_MINUTE),
                queues.dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=ONE_MINUTE, label="DLQ visible"
                ),
            ],
            right=[
                queues.queue.metric_approximate_age_of_oldest_message(period=ONE_MINUTE),
                records.per_event_type(MESSAGE_AGE, "p99"),
            ],
            width=12,
        ),
        cw.GraphWidget(
            title="4. Error rate",
            left=[records.error_rate()],
            right=[function.metric_errors(period=ONE_MINUTE)],
            width=12,
        ),
    ]


def worker_health(settings: StackSettings, function: lambda_.Function, max_memory_used: cw.IMetric) -> list[cw.IWidget]:
    """The seed's fifth metric: duration and memory, each against its limit and its alarm."""
    timeout_ms = settings.function_timeout_seconds * 1000
    memory_mb = settings.function_memory_mb
    return [
        cw.GraphWidget(
            title="5. Worker health: duration against the timeout",
            left=[function.metric_duration(statistic="Maximum", period=ONE_MINUTE)],
            left_annotations=[
                cw.HorizontalAnnotation(value=timeout_ms, label="timeout"),
                cw.HorizontalAnnotation(value=timeout_ms * NEAR_LIMIT, label="alarm"),
            ],
            width=12,
        ),
        cw.GraphWidget(
            title="5. Worker health: memory used against the limit (MB)",
            left=[max_memory_used],
            left_annotations=[
                cw.HorizontalAnnotation(value=memory_mb, label="memory size"),
                cw.HorizontalAnnotation(value=memory_mb * NEAR_LIMIT, label="alarm"),
            ],
            width=12,
        ),
    ]


def mapping_concurrency_and_alarms(
    queues: QueuesConstruct, consumer: ConsumerFunctionConstruct, alarms: list[cw.Alarm]
) -> list[cw.IWidget]:
    """What the mapping polls and invokes, the function's concurrency and throttles, every alarm's state."""
    function = consumer.function
    return [
        cw.GraphWidget(
            title="Event source mapping: polled, invoked, failed invokes",
            left=[
                consumer.metric_mapping(name, ONE_MINUTE)
                for name in ("PolledEventCount", "InvokedEventCount", "FailedInvokeEventCount")
            ],
            width=12,
        ),
        cw.GraphWidget(
            title="Concurrency, throttles and DLQ arrivals",
            left=[
                cw.Metric(
                    namespace="AWS/Lambda",
                    metric_name="ConcurrentExecutions",
                    dimensions_map={"FunctionName": function.function_name},
                    statistic="Maximum",
                    period=ONE_MINUTE,
                ),
                function.metric_throttles(period=ONE_MINUTE),
            ],
            right=[
                queues.dead_letter_queue.metric_number_of_messages_sent(
                    period=ONE_MINUTE, statistic="Sum", label="DLQ arrivals (quarantined)"
                )
            ],
            width=12,
        ),
        cw.AlarmStatusWidget(alarms=alarms, title="Alarms", width=24),
    ]


def _not_polling(settings: StackSettings, visible: cw.IMetric, polled: cw.IMetric) -> cw.MathExpression:
    """Messages wait and nothing polls them; not while a breaker paused the mapping on purpose (its own alarm)."""
    if not settings.breakers:
        return cw.MathExpression(expression="IF(visible > 0 AND FILL(polled, 0) == 0, 1, 0)",
                                 using_metrics={"visible": visible, "polled": polled}, period=FIVE_MINUTES,
                                 label="Messages waiting while the mapping polls none")  # fmt: skip
    return cw.MathExpression(
        expression="IF(visible > 0 AND FILL(polled, 0) == 0 AND FILL(open, 0) == 0, 1, 0)",
        using_metrics={"visible": visible, "polled": polled,
                       "open": breaker_metric(settings, "BreakerOpen").with_(period=FIVE_MINUTES)},
        period=FIVE_MINUTES, label="Messages waiting while the mapping polls none (no breaker open)",
    )  # fmt: skip


def breakers_row(settings: StackSettings) -> list[cw.IWidget]:
    """Each dependency's breaker (open seconds, transitions): its state is the mapping's (paused while open)."""
    if not settings.breakers:
        return []
    search = f'{{{settings.metrics_namespace},dependency,service}} service="{settings.service_name}"'
    return [
        cw.GraphWidget(title="Dependency breakers: seconds open (each probe), per dependency", left=[
            cw.MathExpression(expression=f"SEARCH('{search} MetricName=\"BreakerOpenSeconds\"', 'Maximum', 60)",
                              using_metrics={}, label="open seconds", period=ONE_MINUTE)], width=12),
        cw.GraphWidget(title="Dependency breakers: state changes (the mapping paused on open, resumed on close)",
                       left=[cw.MathExpression(
                           expression=f"SEARCH('{search} MetricName=\"BreakerTransitions\"', 'Sum', 60)",
                           using_metrics={}, label="transitions", period=ONE_MINUTE)], width=12),
    ]  # fmt: skip


class MonitoringConstruct(Construct):
    """Alarms on the DLQ, queue age, function errors and throttles, and a stalled mapping."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StackSettings,
        queues: QueuesConstruct,
        consumer: ConsumerFunctionConstruct,
        topic: sns.ITopic | None = None,
        registry: EventRegistry = REGISTRY,
    ) -> None:
        super().__init__(scope, construct_id)
        # The stack's own topic, unless the caller or the stage names one.
        self.owns_topic = topic is None and settings.alarm_topic_arn is None
        if topic is not None:
            self.topic: sns.ITopic = topic
        elif settings.alarm_topic_arn is not None:
            # An existing topic: its owner's policy must let cloudwatch.amazonaws.com publish.
            self.topic = sns.Topic.from_topic_arn(self, "AlarmTopic", settings.alarm_topic_arn)
        else:
            self.topic = self._own_topic(settings, Stack.of(self))
        # Max Memory Used, from the REPORT line (platform.report) Lambda writes after each invocation.
        self.max_memory_used = logs.MetricFilter(
            self,
            "MaxMemoryUsedFilter",
            log_group=consumer.log_group,
            filter_pattern=logs.FilterPattern.literal('{ $.type = "platform.report" }'),
            # The stage's namespace and the consumer's service: each consumer of each stage its own series.
            metric_namespace=f"{settings.metrics_namespace}/{settings.service_name}",
            metric_name="MaxMemoryUsedMB",
            metric_value="$.record.metrics.maxMemoryUsedMB",
            unit=cw.Unit.MEGABYTES,
        ).metric(statistic="Maximum", period=FIVE_MINUTES, label="Max memory used (MB)")
        specs = [
            *dead_letter_queue_alarms(settings, queues),
            *flow_alarms(settings, queues, consumer),
            *near_limit_alarms(settings, consumer, self.max_memory_used),
            *service_level_alarms(settings, registry),
            *breaker_alarms(settings),
        ]
        self.alarms = {spec.name: spec.make(self) for spec in specs}
        for alarm in self.alarms.values():
            alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
            alarm.add_ok_action(cw_actions.SnsAction(self.topic))
        self.dashboard = dashboard(
            self,
            settings=settings,
            queues=queues,
            consumer=consumer,
            max_memory_used=self.max_memory_used,
            alarms=list(self.alarms.values()),
        )

    def _own_topic(self, settings: StackSettings, stack: Stack) -> sns.Topic:
        topic = sns.Topic(
            self,
            "AlarmTopic",
            enforce_ssl=True,
            display_name=f"{settings.service_name} alarms",
        )
        # A topic policy replaces SNS's default one: without this statement the TLS-only policy
        # leaves nothing that lets CloudWatch publish, and every alarm action fails.
        alarms = stack.format_arn(
            service="cloudwatch", resource="alarm", resource_name="*", arn_format=ArnFormat.COLON_RESOURCE_NAME
        )
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsOfThisAccount",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {"aws:SourceArn": alarms},
                },
            )
        )
        if settings.alarm_email:
            topic.add_subscription(subscriptions.EmailSubscription(settings.alarm_email))
        scanner_skips.skip(topic, "CKV_AWS_26", scanner_skips.TOPIC_KMS)
        return topic
