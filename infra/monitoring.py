"""Alarms, their SNS topic, and the dashboard of the seed's five metrics."""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra import scanner_skips
from infra.consumer_function import ConsumerFunctionConstruct
from infra.queues import QueuesConstruct
from infra.settings import StackSettings

ONE_MINUTE = Duration.minutes(1)
FIVE_MINUTES = Duration.minutes(5)
# Duration and memory alarms fire at this share of the function's timeout and memory size.
NEAR_LIMIT = 0.9
RUNBOOK = "docs/runbook.md"


def runbook(section: str) -> str:
    return f"Runbook: {RUNBOOK}#{section}"


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
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # The stack's own topic, unless the caller or the stage names one.
        self.owns_topic = topic is None and settings.alarm_topic_arn is None
        if topic is not None:
            self.topic: sns.ITopic = topic
        elif settings.alarm_topic_arn is not None:
            # An existing topic: its owner's policy must let cloudwatch.amazonaws.com publish.
            self.topic = sns.Topic.from_topic_arn(self, "AlarmTopic", settings.alarm_topic_arn)
        else:
            self.topic = self._own_topic(settings, stack)

        queue, dlq, function = queues.queue, queues.dead_letter_queue, consumer.function
        visible = queue.metric_approximate_number_of_messages_visible(period=FIVE_MINUTES, statistic="Maximum")
        polled = self.mapping_metric(consumer, "PolledEventCount", FIVE_MINUTES)
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
        memory_limit = settings.function_memory_mb * NEAR_LIMIT
        duration_limit_ms = settings.function_timeout_seconds * 1000 * NEAR_LIMIT
        above_zero = cw.ComparisonOperator.GREATER_THAN_THRESHOLD
        quiet = cw.TreatMissingData.NOT_BREACHING
        # A standard queue's DLQ keeps each message's first enqueue time: its age and its expiry
        # both count from there.
        dlq_age_limit = settings.dlq_retention_period_seconds // 2
        self.alarms = {
            name: cw.Alarm(
                self,
                name,
                alarm_description=description,
                metric=metric,
                threshold=threshold,
                comparison_operator=operator,
                evaluation_periods=periods,
                datapoints_to_alarm=datapoints,
                treat_missing_data=missing,
            )
            for name, description, metric, threshold, operator, periods, datapoints, missing in (
                (
                    "DeadLetterQueueNotEmpty",
                    "Messages are in the DLQ: quarantined or out of retries. Inspect and redrive. "
                    + runbook("dlq-filling"),
                    dlq.metric_approximate_number_of_messages_visible(period=ONE_MINUTE, statistic="Maximum"),
                    # A gap in the DLQ's metrics says nothing about its backlog: the alarm keeps its state.
                    0, above_zero, 1, None, cw.TreatMissingData.IGNORE,
                ),
                (
                    "DeadLetterQueueMessagesAging",
                    f"A message has waited in the DLQ more than half its retention ({dlq_age_limit} s of "
                    f"{settings.dlq_retention_period_seconds} s): redrive or drop it before SQS deletes it unseen. "
                    + runbook("dlq-messages-aging"),
                    dlq.metric_approximate_age_of_oldest_message(period=FIVE_MINUTES, statistic="Maximum"),
                    dlq_age_limit, above_zero, 1, None, cw.TreatMissingData.IGNORE,
                ),
                (
                    "DeadLetterQueueArrivals",
                    "New messages reached the DLQ in the last minute (every quarantine is a SendMessage, so each "
                    "arrival notifies, even while the backlog alarm stays in ALARM). Moves by SQS's own redrive "
                    "(a crash or timeout on the last receive) are not counted here; the backlog alarm covers them. "
                    + runbook("new-dlq-arrivals"),
                    dlq.metric_number_of_messages_sent(period=ONE_MINUTE, statistic="Sum"),
                    0, above_zero, 1, None, quiet,
                ),
                (
                    "OldestMessageTooOld",
                    "The queue is falling behind: its oldest message is older than the threshold. "
                    + runbook("messages-not-processing"),
                    queue.metric_approximate_age_of_oldest_message(period=ONE_MINUTE, statistic="Maximum"),
                    settings.oldest_message_age_alarm_seconds, above_zero, 5, 3, quiet,
                ),
                (
                    "FunctionErrors",
                    "The function itself failed (crash, timeout, bad deploy); record failures are reported "
                    "in the batch response, not here. " + runbook("high-error-rate"),
                    function.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
                    0, above_zero, 1, None, quiet,
                ),
                (
                    "FunctionThrottles",
                    "Invocations are throttled: throttled receives still count toward maxReceiveCount. "
                    + runbook("throttling"),
                    function.metric_throttles(period=FIVE_MINUTES, statistic="Sum"),
                    0, above_zero, 1, None, quiet,
                ),
                (
                    "MappingNotPolling",
                    "Messages wait but the event source mapping polls none (disabled, broken permissions or a "
                    "deleted function). " + runbook("messages-not-processing"),
                    cw.MathExpression(
                        expression="IF(visible > 0 AND FILL(polled, 0) == 0, 1, 0)",
                        using_metrics={"visible": visible, "polled": polled},
                        period=FIVE_MINUTES,
                        label="Messages waiting while the mapping polls none",
                    ),
                    1, cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD, 3, None, quiet,
                ),
                (
                    "DurationNearTimeout",
                    f"An invocation ran past {NEAR_LIMIT:.0%} of the {settings.function_timeout_seconds} s timeout: "
                    "the next may time out and redeliver its whole batch. " + runbook("duration-near-timeout"),
                    function.metric_duration(period=FIVE_MINUTES, statistic="Maximum"),
                    duration_limit_ms, cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD, 1, None, quiet,
                ),
                (
                    "MemoryNearLimit",
                    f"An invocation used more than {NEAR_LIMIT:.0%} of the {settings.function_memory_mb} MB memory "
                    "(the seed's Worker Health): the next may run out. " + runbook("memory-near-limit"),
                    self.max_memory_used,
                    memory_limit, cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD, 1, None, quiet,
                ),
            )
        }  # fmt: skip
        for alarm in self.alarms.values():
            alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
            alarm.add_ok_action(cw_actions.SnsAction(self.topic))

        self.dashboard = self._dashboard(settings, queues, consumer)

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

    @staticmethod
    def mapping_metric(consumer: ConsumerFunctionConstruct, name: str, period: Duration) -> cw.Metric:
        """One of the event source mapping's own metrics (its EventCount metrics are turned on)."""
        return cw.Metric(
            namespace="AWS/Lambda",
            metric_name=name,
            dimensions_map={"EventSourceMappingUUID": consumer.event_source_mapping.event_source_mapping_id},
            period=period,
            statistic="Sum",
            label=name,
        )

    def _dashboard(
        self, settings: StackSettings, queues: QueuesConstruct, consumer: ConsumerFunctionConstruct
    ) -> cw.Dashboard:
        function = consumer.function

        def search(metric_name: str, statistic: str) -> str:
            # One series per event_type: the consumer emits metrics with that dimension.
            return (
                f'SEARCH(\'{{{settings.metrics_namespace},event_type,service}} MetricName="{metric_name}" '
                f"service=\"{settings.service_name}\"', '{statistic}', 60)"
            )

        def expression(text: str, label: str) -> cw.MathExpression:
            return cw.MathExpression(expression=text, using_metrics={}, label=label, period=ONE_MINUTE)

        # Zero counts are left out of the EMF documents: FILL draws them as 0.
        def records(metric_name: str, statistic: str = "Sum") -> cw.MathExpression:
            return expression(f"FILL({search(metric_name, statistic)}, 0)", metric_name)

        def total(metric_name: str) -> cw.MathExpression:
            return expression(f"FILL(SUM({search(metric_name, 'Sum')}), 0)", metric_name)

        error_rate = cw.MathExpression(
            expression="IF(processed + failed + quarantined > 0, "
            "100 * (failed + quarantined) / (processed + failed + quarantined), 0)",
            using_metrics={
                "processed": total("RecordsProcessed"),
                "failed": total("RecordsFailed"),
                "quarantined": total("RecordsQuarantined"),
            },
            label="Record error rate (%)",
            period=ONE_MINUTE,
        )
        dashboard = cw.Dashboard(self, "Dashboard", default_interval=Duration.hours(3))
        dashboard.add_widgets(
            cw.GraphWidget(
                title="1. Messages processed (per event type)",
                left=[records("RecordsProcessed")],
                right=[records("RecordsFailed"), records("RecordsQuarantined"), records("RecordsSkippedByDeadline")],
                width=12,
            ),
            cw.GraphWidget(
                title="2. Processing time (ms)",
                left=[records("ProcessingTime", "Average"), records("ProcessingTimeMax", "Maximum")],
                right=[function.metric_duration(statistic="p90", period=ONE_MINUTE)],
                width=12,
            ),
        )
        dashboard.add_widgets(
            cw.GraphWidget(
                title="3. Queue depth",
                left=[
                    queues.queue.metric_approximate_number_of_messages_visible(period=ONE_MINUTE),
                    queues.queue.metric_approximate_number_of_messages_not_visible(period=ONE_MINUTE),
                    queues.dead_letter_queue.metric_approximate_number_of_messages_visible(
                        period=ONE_MINUTE, label="DLQ visible"
                    ),
                ],
                right=[queues.queue.metric_approximate_age_of_oldest_message(period=ONE_MINUTE)],
                width=12,
            ),
            cw.GraphWidget(
                title="4. Error rate",
                left=[error_rate],
                right=[function.metric_errors(period=ONE_MINUTE)],
                width=12,
            ),
        )
        timeout_ms = settings.function_timeout_seconds * 1000
        dashboard.add_widgets(
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
                left=[self.max_memory_used],
                left_annotations=[
                    cw.HorizontalAnnotation(value=settings.function_memory_mb, label="memory size"),
                    cw.HorizontalAnnotation(value=settings.function_memory_mb * NEAR_LIMIT, label="alarm"),
                ],
                width=12,
            ),
        )
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Event source mapping: polled, invoked, failed invokes",
                left=[
                    self.mapping_metric(consumer, name, ONE_MINUTE)
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
            cw.AlarmStatusWidget(alarms=list(self.alarms.values()), title="Alarms", width=24),
        )
        return dashboard
