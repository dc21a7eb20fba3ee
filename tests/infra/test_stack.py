"""The synthesized template holds the contract (docs/design.md §5), asserted property by property."""

from __future__ import annotations

import json

from aws_cdk.assertions import Match, Template

from infra.consumer_function import QUEUE_ACTIONS
from infra.stack import ConsumerStack
from planning.cost import ALARMS
from tests.infra.conftest import synth


def queue_logical_id(template: Template, dlq: bool) -> str:
    queues = template.find_resources("AWS::SQS::Queue")
    [logical_id] = [lid for lid, q in queues.items() if ("RedrivePolicy" in q["Properties"]) != dlq]
    return logical_id


def test_queue_redrives_to_dlq_after_retries_plus_one(template: Template):
    dlq = queue_logical_id(template, dlq=True)
    template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "VisibilityTimeout": 300,
            "ReceiveMessageWaitTimeSeconds": 20,
            "MessageRetentionPeriod": 4 * 86_400,
            "SqsManagedSseEnabled": True,
            "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]}, "maxReceiveCount": 5},
        },
    )


def test_dlq_is_encrypted_and_keeps_messages_longer(template: Template):
    template.has_resource_properties(
        "AWS::SQS::Queue",
        {"MessageRetentionPeriod": 14 * 86_400, "SqsManagedSseEnabled": True, "RedrivePolicy": Match.absent()},
    )


def test_dlq_holds_the_largest_message_with_its_reason(template: Template):
    template.has_resource_properties(
        "AWS::SQS::Queue", {"MaximumMessageSize": 262_144, "RedrivePolicy": Match.any_value()}
    )
    template.has_resource_properties(
        "AWS::SQS::Queue", {"MaximumMessageSize": 1_048_576, "RedrivePolicy": Match.absent()}
    )


def test_both_queues_deny_requests_without_tls(template: Template):
    for dlq in (True, False):
        template.has_resource_properties(
            "AWS::SQS::QueuePolicy",
            {
                "Queues": [{"Ref": queue_logical_id(template, dlq)}],
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [
                            Match.object_like(
                                {
                                    "Effect": "Deny",
                                    "Action": "sqs:*",
                                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                                }
                            )
                        ]
                    )
                },
            },
        )


def test_function_runtime_memory_timeout_concurrency_and_logs(template: Template):
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Runtime": "python3.14",
            "Architectures": ["arm64"],
            "Handler": "sqs_consumer.handler.lambda_handler",
            "MemorySize": 256,
            "Timeout": 30,
            # Unset in dev: small accounts (10 concurrent executions) refuse any reservation.
            "ReservedConcurrentExecutions": Match.absent(),
            "RecursiveLoop": "Terminate",
            "LoggingConfig": Match.object_like(
                {"LogFormat": "JSON", "ApplicationLogLevel": "INFO", "SystemLogLevel": "INFO"}
            ),
        },
    )
    template.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 30})


def test_function_environment_is_what_the_handler_settings_read(template: Template):
    dlq = queue_logical_id(template, dlq=True)
    [bucket] = template.find_resources("AWS::S3::Bucket")
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Environment": {
                "Variables": {
                    "DLQ_URL": {"Ref": dlq},
                    "PAYLOAD_BUCKET": {"Ref": bucket},
                    "TIME_RESERVE_MS": "5000",
                    "MAX_CONCURRENT_RECORDS": "10",
                    "POWERTOOLS_SERVICE_NAME": "sqs-consumer",
                    "POWERTOOLS_METRICS_NAMESPACE": "SqsConsumer/dev",  # the stage is appended
                    "POWERTOOLS_LOG_LEVEL": "INFO",
                    "RETRY_BACKOFF_BASE_SECONDS": "10",
                    "RETRY_BACKOFF_CAP_SECONDS": "300",
                    # The redrive's maxReceiveCount, from the one max_retries setting, and the DLQ's size.
                    "MAX_RECEIVE_COUNT": "5",
                    "DLQ_MAX_MESSAGE_BYTES": "1048576",
                }
            }
        },
    )


def test_event_source_mapping_reports_partial_failures_with_bounded_concurrency(template: Template):
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "BatchSize": 10,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": 3},
            "MetricsConfig": {"Metrics": ["EventCount"]},
            "MaximumBatchingWindowInSeconds": Match.absent(),
        },
    )


def test_function_role_may_only_send_to_the_dlq_beyond_polling_and_logs(template: Template):
    dlq = queue_logical_id(template, dlq=True)
    queue = queue_logical_id(template, dlq=False)
    [function] = template.find_resources("AWS::Lambda::Function").values()
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    # The role's default policy: the breakers' own is checked below.
    [policy] = [p for lid, p in template.find_resources("AWS::IAM::Policy").items()
                if {"Ref": role} in p["Properties"]["Roles"] and "Breaker" not in lid]  # fmt: skip
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    by_resource = {json.dumps(s["Resource"], sort_keys=True): s for s in statements}
    for statement in statements:
        assert statement["Resource"] != "*", statement
    send = [s for s in statements if "sqs:SendMessage" in json.dumps(s["Action"])]
    assert [s["Resource"] for s in send] == [{"Fn::GetAtt": [dlq, "Arn"]}]
    consume = by_resource[json.dumps({"Fn::GetAtt": [queue, "Arn"]}, sort_keys=True)]
    assert sorted(consume["Action"]) == sorted(QUEUE_ACTIONS)
    # Granted through the queues' grant(), and nothing the function or its mapping never calls.
    assert [s["Action"] for s in send] == ["sqs:SendMessage"]
    assert "GetQueueUrl" not in json.dumps(statements)


def test_breakers_may_update_only_this_functions_mapping_and_schedule_probes_in_their_group(template: Template):
    # GIVEN the breakers' policy on the function's role
    [function_id] = template.find_resources("AWS::Lambda::Function")
    [policy] = [p for lid, p in template.find_resources("AWS::IAM::Policy").items() if "BreakerPolicy" in lid]
    by_action = {json.dumps(s["Action"]): s for s in policy["Properties"]["PolicyDocument"]["Statement"]}

    # THEN UpdateEventSourceMapping holds only for mappings that invoke this function
    update = by_action['"lambda:UpdateEventSourceMapping"']
    assert "event-source-mapping:*" in json.dumps(update["Resource"])
    assert {"Fn::GetAtt": [function_id, "Arn"]} in update["Condition"]["ArnLike"]["lambda:FunctionArn"]
    # schedules are made in the stack's probe group only, with a role passed to Scheduler only
    [group] = template.find_resources("AWS::Scheduler::ScheduleGroup").values()
    assert f"schedule/{group['Properties']['Name']}/probe-*" in json.dumps(by_action['"scheduler:CreateSchedule"'])
    assert by_action['"iam:PassRole"']["Condition"] == {
        "StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}
    }
    # and the scheduler's role may invoke this function and nothing else
    template.has_resource_properties("AWS::IAM::Policy", {"PolicyDocument": {"Statement": [
        {"Action": "lambda:InvokeFunction", "Effect": "Allow", "Resource": {"Fn::GetAtt": [function_id, "Arn"]}}
    ]}})  # fmt: skip


def test_the_function_is_told_its_breakers_settings_and_probe_group(template: Template):
    [function] = template.find_resources("AWS::Lambda::Function").values()
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables["BREAKERS_ENABLED"] == "true"
    assert (variables["BREAKER_THRESHOLD"], variables["BREAKER_COOL_DOWN_CAP_SECONDS"]) == ("5", "30")
    assert variables["PROBE_SCHEDULE_GROUP"].endswith("probes") or variables["PROBE_SCHEDULE_GROUP"]
    [role] = [r for lid, r in template.find_resources("AWS::IAM::Role").items() if "ProbeRole" in lid]
    assert variables["PROBE_ROLE_NAME"] == role["Properties"]["RoleName"]


def test_alarms_cover_dlq_age_errors_throttles_and_polling(template: Template):
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    by_metric = {a["Properties"].get("MetricName"): a["Properties"] for a in alarms.values()}
    assert by_metric["ApproximateNumberOfMessagesVisible"]["Threshold"] == 0
    assert by_metric["ApproximateAgeOfOldestMessage"]["Threshold"] == 600
    assert by_metric["Errors"]["ComparisonOperator"] == "GreaterThanThreshold"
    assert by_metric["Throttles"]["Threshold"] == 0
    [polling] = [a["Properties"] for a in alarms.values() if "polled" in json.dumps(a["Properties"].get("Metrics"))]
    expressions = [m.get("Expression", "") for m in polling["Metrics"]]
    assert any("polled" in e for e in expressions)
    assert any(m.get("MetricStat", {}).get("Metric", {}).get("MetricName") == "PolledEventCount"
               for m in polling["Metrics"])  # fmt: skip
    [topic] = template.find_resources("AWS::SNS::Topic")
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic}]


def test_dashboard_shows_the_five_seed_metrics(template: Template):
    [dashboard] = template.find_resources("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for title in ("Messages processed", "Processing time", "Queue depth", "Error rate", "Worker health"):
        assert title in body


def test_outputs_for_upstream_services(template: Template):
    outputs = template.find_outputs("*")
    assert {"QueueUrl", "QueueArn", "DeadLetterQueueUrl", "FunctionName", "PayloadBucketName"} <= set(outputs)


def test_stack_name_carries_the_stage(dev_stack: ConsumerStack):
    assert dev_stack.stack_name == "SqsConsumer-dev"


def test_fifo_stage_makes_both_queues_fifo():
    _, stack = synth("orders", fifo=True, content_based_deduplication=True)
    template = Template.from_stack(stack)
    queues = template.find_resources("AWS::SQS::Queue")
    assert len(queues) == 2
    for queue in queues.values():
        assert queue["Properties"]["FifoQueue"] is True
        assert queue["Properties"]["ContentBasedDeduplication"] is True


def test_batching_window_and_email_subscription_and_producers():
    producer = "arn:aws:iam::111122223333:role/orders-api"
    _, stack = synth(
        "big", batch_size=100, max_batching_window_seconds=5, visibility_timeout_seconds=185,
        alarm_email="oncall@example.com", producer_principals=[producer],
    )  # fmt: skip
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping", {"BatchSize": 100, "MaximumBatchingWindowInSeconds": 5}
    )
    template.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "oncall@example.com"})
    template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Allow",
                                "Principal": {"AWS": producer},
                                "Action": "sqs:SendMessage",
                            }
                        )
                    ]
                )
            }
        },
    )


def test_idempotency_table_outlives_queue_and_dlq_retention(template: Template):
    [table_id] = template.find_resources("AWS::DynamoDB::GlobalTable")
    template.has_resource_properties(
        "AWS::DynamoDB::GlobalTable",
        {
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "TimeToLiveSpecification": {"AttributeName": "expiration", "Enabled": True},
            "BillingMode": "PAY_PER_REQUEST",
        },
    )
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Environment": {
                "Variables": {
                    "IDEMPOTENCY_TABLE": {"Ref": table_id},
                    # queue retention (4 days) + DLQ retention (14 days)
                    "IDEMPOTENCY_TTL_SECONDS": str(18 * 86_400),
                }
            }
        },
    )


def test_function_role_uses_only_item_calls_on_the_table(template: Template):
    [table_id] = template.find_resources("AWS::DynamoDB::GlobalTable")
    policies = template.find_resources("AWS::IAM::Policy")
    [policy] = [p for lid, p in policies.items() if "DefaultPolicy" in lid and "ProbeRole" not in lid]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    [table_statement] = [s for s in statements if "dynamodb" in json.dumps(s["Action"])]
    # The breakers read their states with one BatchGetItem, from their own policy.
    [breakers] = [p for lid, p in policies.items() if "BreakerPolicy" in lid]
    [read] = [s for s in breakers["Properties"]["PolicyDocument"]["Statement"] if "dynamodb" in json.dumps(s)]
    assert read["Action"] == "dynamodb:BatchGetItem" and table_id in json.dumps(read["Resource"])
    assert sorted(table_statement["Action"]) == [
        "dynamodb:BatchWriteItem",
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
    ]
    assert table_id in json.dumps(table_statement["Resource"])


def test_idempotency_can_be_turned_off():
    _, stack = synth("plain", idempotency=False)
    template = Template.from_stack(stack)
    assert template.find_resources("AWS::DynamoDB::GlobalTable") == {}
    [function] = template.find_resources("AWS::Lambda::Function").values()
    assert "IDEMPOTENCY_TABLE" not in function["Properties"]["Environment"]["Variables"]
    # nor breakers, whose state lives in that table
    assert "BREAKERS_ENABLED" not in function["Properties"]["Environment"]["Variables"]
    assert template.find_resources("AWS::Scheduler::ScheduleGroup") == {}


def test_alarm_topic_lets_cloudwatch_alarms_of_this_account_publish(template: Template):
    # A topic policy replaces SNS's default: the TLS Deny alone would leave CloudWatch no Allow.
    [policy] = template.find_resources("AWS::SNS::TopicPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    [allow] = [s for s in statements if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow["Action"] == "sns:Publish"
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    source = json.dumps(allow["Condition"]["ArnLike"]["aws:SourceArn"])
    assert ":cloudwatch:" in source and ":alarm:*" in source


def test_every_new_dlq_arrival_raises_an_alarm(template: Template):
    dlq = queue_logical_id(template, dlq=True)
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "NumberOfMessagesSent",
            "Namespace": "AWS/SQS",
            "Statistic": "Sum",
            "Period": 60,
            "Threshold": 0,
            "ComparisonOperator": "GreaterThanThreshold",
            "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq, "QueueName"]}}],
            "AlarmActions": Match.any_value(),
        },
    )


def test_snap_start_publishes_a_version_and_the_mapping_invokes_its_alias():
    _, stack = synth("snap", snap_start=True)
    template = Template.from_stack(stack)
    [(function_id, function)] = template.find_resources("AWS::Lambda::Function").items()
    assert function["Properties"]["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    [(version_id, version)] = template.find_resources("AWS::Lambda::Version").items()
    assert version["Properties"]["FunctionName"] == {"Ref": function_id}
    [(alias_id, alias)] = template.find_resources("AWS::Lambda::Alias").items()
    assert alias["Properties"]["Name"] == "live"
    assert alias["Properties"]["FunctionVersion"] == {"Fn::GetAtt": [version_id, "Version"]}
    [mapping] = template.find_resources("AWS::Lambda::EventSourceMapping").values()
    # The alias's qualified name: <function name>:live, taken from the alias's ARN.
    target = json.dumps(mapping["Properties"]["FunctionName"])
    assert alias_id in target and '":live"' in target


def test_snap_start_is_off_by_default(template: Template):
    [function] = template.find_resources("AWS::Lambda::Function").values()
    assert "SnapStart" not in function["Properties"]
    assert template.find_resources("AWS::Lambda::Alias") == {}
    [mapping] = template.find_resources("AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["FunctionName"] == {
        "Ref": next(iter(template.find_resources("AWS::Lambda::Function")))
    }


def test_the_cost_model_prices_every_alarm_of_a_consumer(template: Template):
    # The dev stage has one consumer: sqs-plan's monthly bill counts exactly its alarms.
    assert len(template.find_resources("AWS::CloudWatch::Alarm")) == ALARMS
