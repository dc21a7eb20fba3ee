"""Alarms, their SNS topic, and the dashboard of the seed's five metrics."""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.consumer_function import ConsumerFunctionConstruct
from infra.queues import QueuesConstruct
from infra.settings import StackSettings

ONE_MINUTE = Duration.minutes(1)
FIVE_MINUTES = Duration.minutes(5)


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
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "AlarmTopic", enforce_ssl=True, display_name=f"{settings.service_name} alarms")
        # A topic policy replaces SNS's default one: without this statement the TLS-only policy
        # leaves nothing that lets CloudWatch publish, and every alarm action fails.
        stack = Stack.of(self)
        alarms = stack.format_arn(
            service="cloudwatch", resource="alarm", resource_name="*", arn_format=ArnFormat.COLON_RESOURCE_NAME
        )
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsOfThisAccount",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {"aws:SourceArn": alarms},
                },
            )
        )
        if settings.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(settings.alarm_email))

        queue, dlq, function = queues.queue, queues.dead_letter_queue, consumer.function
        visible = queue.metric_approximate_number_of_messages_visible(period=FIVE_MINUTES, statistic="Maximum")
        polled = cw.Metric(
            namespace="AWS/Lambda",
            metric_name="PolledEventCount",
            dimensions_map={"EventSourceMappingUUID": consumer.event_source.event_source_mapping_id},
            period=FIVE_MINUTES,
            statistic="Sum",
        )
        above_zero = cw.ComparisonOperator.GREATER_THAN_THRESHOLD
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
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            )
            for name, description, metric, threshold, operator, periods, datapoints in (
                (
                    "DeadLetterQueueNotEmpty",
                    "Messages are in the DLQ: quarantined or out of retries. Inspect and redrive.",
                    dlq.metric_approximate_number_of_messages_visible(period=ONE_MINUTE, statistic="Maximum"),
                    0, above_zero, 1, None,
                ),
                (
                    "DeadLetterQueueArrivals",
                    "New messages reached the DLQ in the last minute (every quarantine is a SendMessage, so each "
                    "arrival notifies, even while the backlog alarm stays in ALARM). Moves by SQS's own redrive "
                    "(a crash or timeout on the last receive) are not counted here; the backlog alarm covers them.",
                    dlq.metric_number_of_messages_sent(period=ONE_MINUTE, statistic="Sum"),
                    0, above_zero, 1, None,
                ),
                (
                    "OldestMessageTooOld",
                    "The queue is falling behind: its oldest message is older than the threshold.",
                    queue.metric_approximate_age_of_oldest_message(period=ONE_MINUTE, statistic="Maximum"),
                    settings.oldest_message_age_alarm_seconds, above_zero, 5, 3,
                ),
                (
                    "FunctionErrors",
                    "The function itself failed (crash, timeout, bad deploy); record failures are reported "
                    "in the batch response, not here.",
                    function.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
                    0, above_zero, 1, None,
                ),
                (
                    "FunctionThrottles",
                    "Invocations are throttled: throttled receives still count toward maxReceiveCount.",
                    function.metric_throttles(period=FIVE_MINUTES, statistic="Sum"),
                    0, above_zero, 1, None,
                ),
                (
                    "MappingNotPolling",
                    "Messages wait but the event source mapping polls none (disabled, broken permissions or a "
                    "deleted function).",
                    cw.MathExpression(
                        expression="IF(visible > 0 AND FILL(polled, 0) == 0, 1, 0)",
                        using_metrics={"visible": visible, "polled": polled},
                        period=FIVE_MINUTES,
                        label="Messages waiting while the mapping polls none",
                    ),
                    1, cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD, 3, None,
                ),
            )
        }  # fmt: skip
        for alarm in self.alarms.values():
            alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
            alarm.add_ok_action(cw_actions.SnsAction(self.topic))

        self.dashboard = self._dashboard(settings, queues, consumer)

    def _dashboard(
        self, settings: StackSettings, queues: QueuesConstruct, consumer: ConsumerFunctionConstruct
    ) -> cw.Dashboard:
        function = consumer.function

        def records(metric_name: str, statistic: str = "Sum") -> cw.MathExpression:
            # One line per event_type: the consumer emits metrics with that dimension.
            return cw.MathExpression(
                expression=(
                    f'SEARCH(\'{{{settings.metrics_namespace},event_type,service}} MetricName="{metric_name}" '
                    f"service=\"{settings.service_name}\"', '{statistic}', 60)"
                ),
                using_metrics={},
                label=metric_name,
                period=ONE_MINUTE,
            )

        def total(metric_name: str) -> cw.MathExpression:
            return cw.MathExpression(
                expression=(
                    f'SUM(SEARCH(\'{{{settings.metrics_namespace},event_type,service}} MetricName="{metric_name}" '
                    f"service=\"{settings.service_name}\"', 'Sum', 60))"
                ),
                using_metrics={},
                label=metric_name,
                period=ONE_MINUTE,
            )

        error_rate = cw.MathExpression(
            expression="100 * (failed + quarantined) / MAX([processed + failed + quarantined, 1])",
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
        dashboard.add_widgets(
            cw.GraphWidget(
                title="5. Worker health: duration, concurrency, throttles",
                left=[function.metric_duration(statistic="Maximum", period=ONE_MINUTE)],
                right=[
                    cw.Metric(
                        namespace="AWS/Lambda",
                        metric_name="ConcurrentExecutions",
                        dimensions_map={"FunctionName": function.function_name},
                        statistic="Maximum",
                        period=ONE_MINUTE,
                    ),
                    function.metric_throttles(period=ONE_MINUTE),
                ],
                width=24,
            ),
            cw.AlarmStatusWidget(alarms=list(self.alarms.values()), title="Alarms", width=24),
        )
        return dashboard
