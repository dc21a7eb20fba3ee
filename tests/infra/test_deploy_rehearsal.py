"""A deploy rehearsal: what AWS checks when CloudFormation creates each resource, checked on the template.

cdk-nag, cfn-lint and checkov read a template for good practice and schema; none knows that Lambda
refuses a VPC function whose role cannot make network interfaces, or an event source mapping whose
role cannot read the queue yet. Each rule below is one such deploy-time requirement, with the AWS
page it comes from, applied to the stage with every option on (and the other shapes the stack takes).
A rule returns the problems it finds; the last tests show each rule failing on a template that breaks it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

import pytest
from aws_cdk.assertions import Template

from tests.infra.conftest import synth
from tests.infra.test_production import FULL
from tests.infra.test_sqs_consumer import TWO_CONSUMERS

Resources = dict[str, dict[str, Any]]
SNAP_START_RUNTIMES = ("python3.12", "python3.13", "python3.14", "java11", "java17", "java21", "dotnet8")
ENI_ACTIONS = ("ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface")
MAPPING_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")


def of_type(resources: Resources, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, resource in resources.items():
        if resource["Type"] == kind:
            yield logical_id, resource


def props(resource: dict[str, Any]) -> dict[str, Any]:
    return dict(resource.get("Properties", {}))


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_statements(resources: Resources, role_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each Allow statement the role holds, with the logical id of the policy that holds it."""
    for policy_id, policy in of_type(resources, "AWS::IAM::Policy"):
        if {"Ref": role_id} in props(policy).get("Roles", []):
            for statement in props(policy)["PolicyDocument"]["Statement"]:
                if statement["Effect"] == "Allow":
                    yield policy_id, statement
    for inline in props(resources[role_id]).get("Policies", []):
        for statement in inline["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Allow":
                yield role_id, statement


def granting(resources: Resources, role_id: str, action: str, resource: Any) -> list[str]:
    """The policies of the role that allow ``action`` on ``resource`` ("*" matches any)."""
    return [
        policy_id
        for policy_id, statement in role_statements(resources, role_id)
        if any(fnmatchcase(action, pattern) for pattern in as_list(statement["Action"]))
        and any(r in ("*", resource) for r in as_list(statement["Resource"]))
    ]


def function_role(function: dict[str, Any]) -> str:
    return str(props(function)["Role"]["Fn::GetAtt"][0])


def mapped_function(resources: Resources, mapping: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The function an event source mapping invokes (by name, or through an alias's ARN)."""
    text = json.dumps(props(mapping)["FunctionName"])
    for function_id, function in of_type(resources, "AWS::Lambda::Function"):
        if f'"{function_id}"' in text:
            return function_id, function
    for _, alias in of_type(resources, "AWS::Lambda::Alias"):
        alias_id = next(lid for lid, r in resources.items() if r is alias)
        if f'"{alias_id}"' in text:
            target = props(alias)["FunctionName"]["Ref"]
            return target, resources[target]
    raise AssertionError(f"mapping invokes no function of the template: {text}")


def mappings(resources: Resources) -> Iterator[tuple[str, dict[str, Any], dict[str, Any], tuple[str, dict[str, Any]]]]:
    """Each event source mapping: its id and properties, its queue's properties, the function it invokes."""
    for mapping_id, mapping in of_type(resources, "AWS::Lambda::EventSourceMapping"):
        queue = resources[props(mapping)["EventSourceArn"]["Fn::GetAtt"][0]]
        yield mapping_id, props(mapping), props(queue), mapped_function(resources, mapping)


def references(value: Any) -> Iterator[str]:
    """The logical ids a template value refers to (Ref, Fn::GetAtt)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                yield inner
            elif key == "Fn::GetAtt":
                yield inner[0]
            else:
                yield from references(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from references(inner)


def created_before(resources: Resources, logical_id: str) -> set[str]:
    """Every resource CloudFormation creates before this one: DependsOn and references, transitively."""
    seen: set[str] = set()
    pending = [logical_id]
    while pending:
        resource = resources[pending.pop()]
        direct = set(as_list(resource.get("DependsOn", []))) | set(references(resource.get("Properties", {})))
        for found in direct & set(resources) - seen:
            seen.add(found)
            pending.append(found)
    return seen


# --- the rules ---------------------------------------------------------------------------------


def vpc_function_role_can_manage_enis(resources: Resources) -> list[str]:
    problems = []
    for function_id, function in of_type(resources, "AWS::Lambda::Function"):
        if "VpcConfig" not in props(function):
            continue
        role = function_role(function)
        for action in ENI_ACTIONS:
            holders = granting(resources, role, action, "*")
            if not holders:
                problems.append(f"{function_id}: its role {role} lacks {action} on *")
            elif not set(holders) & (created_before(resources, function_id) | {role}):
                problems.append(f"{function_id}: the policy granting {action} is not created before it")
    return problems


def mapping_role_can_poll_before_the_mapping_exists(resources: Resources) -> list[str]:
    problems = []
    for mapping_id, mapping, _, (_, function) in mappings(resources):
        queue = mapping["EventSourceArn"]
        role = function_role(function)
        for action in MAPPING_ACTIONS:
            holders = granting(resources, role, action, queue)
            if not holders:
                problems.append(f"{mapping_id}: the function's role lacks {action} on {json.dumps(queue)}")
            elif not set(holders) & created_before(resources, mapping_id):
                problems.append(f"{mapping_id}: not created after the policy granting {action}")
    return problems


def queue_visibility_covers_function_timeout(resources: Resources) -> list[str]:
    problems = []
    for mapping_id, _, queue, (_, function) in mappings(resources):
        visibility, timeout = queue.get("VisibilityTimeout", 30), props(function).get("Timeout", 3)
        if visibility < timeout:
            problems.append(f"{mapping_id}: queue visibility {visibility} s < function timeout {timeout} s")
    return problems


def batching_rules_of_the_mapping(resources: Resources) -> list[str]:
    problems = []
    for mapping_id, p, queue, _ in mappings(resources):
        size, window = p.get("BatchSize", 10), p.get("MaximumBatchingWindowInSeconds", 0)
        if queue.get("FifoQueue") and (size > 10 or window):
            problems.append(f"{mapping_id}: a FIFO queue takes batches of at most 10 and no window")
        if size > 10 and not window:
            problems.append(f"{mapping_id}: batch size {size} > 10 needs MaximumBatchingWindowInSeconds >= 1")
    return problems


def provisioned_mode_excludes_maximum_concurrency(resources: Resources) -> list[str]:
    problems = []
    for mapping_id, mapping in of_type(resources, "AWS::Lambda::EventSourceMapping"):
        p = props(mapping)
        pollers = p.get("ProvisionedPollerConfig")
        if pollers is None:
            continue
        if "MaximumConcurrency" in p.get("ScalingConfig", {}):
            problems.append(f"{mapping_id}: ProvisionedPollerConfig with ScalingConfig.MaximumConcurrency")
        low, high = pollers.get("MinimumPollers", 2), pollers.get("MaximumPollers", 200)
        if not (2 <= low <= 200 and 2 <= high <= 10_000 and low <= high):
            problems.append(f"{mapping_id}: pollers {low}-{high} outside 2-200 / 2-10,000 or minimum > maximum")
    return problems


def snap_start_runtime_and_published_target(resources: Resources) -> list[str]:
    problems = []
    for function_id, function in of_type(resources, "AWS::Lambda::Function"):
        if props(function).get("SnapStart", {}).get("ApplyOn") != "PublishedVersions":
            continue
        if props(function)["Runtime"] not in SNAP_START_RUNTIMES:
            problems.append(f"{function_id}: SnapStart does not support {props(function)['Runtime']}")
        if "FileSystemConfigs" in props(function):
            problems.append(f"{function_id}: SnapStart with EFS")
        for _, mapping in of_type(resources, "AWS::Lambda::EventSourceMapping"):
            if mapped_function(resources, mapping)[0] == function_id and f'"{function_id}"' in json.dumps(
                props(mapping)["FunctionName"]
            ):
                problems.append(f"{function_id}: the mapping invokes $LATEST, which SnapStart never restores")
        for alias_id, alias in of_type(resources, "AWS::Lambda::Alias"):
            if "ProvisionedConcurrencyConfig" in props(alias):
                problems.append(f"{alias_id}: SnapStart with provisioned concurrency")
    return problems


def service_producers_may_send_from_their_source_only(resources: Resources) -> list[str]:
    problems = []
    for policy_id, policy in of_type(resources, "AWS::SQS::QueuePolicy"):
        for statement in props(policy)["PolicyDocument"]["Statement"]:
            service = (
                statement.get("Principal", {}).get("Service") if isinstance(statement["Principal"], dict) else None
            )
            if statement["Effect"] != "Allow" or service not in ("sns.amazonaws.com", "events.amazonaws.com"):
                continue
            if "sqs:SendMessage" not in as_list(statement["Action"]):
                problems.append(f"{policy_id}: {service} is not allowed sqs:SendMessage")
            if not statement.get("Condition", {}).get("ArnEquals", {}).get("aws:SourceArn"):
                problems.append(f"{policy_id}: {service} may send on behalf of any source (no aws:SourceArn)")
    return problems


def alarms_publish_to_a_topic_cloudwatch_may_use(resources: Resources) -> list[str]:
    problems = []
    topic_policies = {
        json.dumps(topic): policy
        for _, policy in of_type(resources, "AWS::SNS::TopicPolicy")
        for topic in props(policy)["Topics"]
    }
    for alarm_id, alarm in of_type(resources, "AWS::CloudWatch::Alarm"):
        for action in props(alarm).get("AlarmActions", []):
            if isinstance(action, str):
                continue  # an existing topic: the template's region rule checks it (rule below)
            policy = topic_policies.get(json.dumps(action))
            statements = props(policy)["PolicyDocument"]["Statement"] if policy else []
            if not any(
                s["Effect"] == "Allow"
                and s.get("Principal", {}).get("Service") == "cloudwatch.amazonaws.com"
                and "sns:Publish" in as_list(s["Action"])
                for s in statements
            ):
                problems.append(f"{alarm_id}: its topic's policy does not let cloudwatch.amazonaws.com publish")
    return problems


def existing_alarm_topic_is_in_the_stacks_region(template: dict[str, Any]) -> list[str]:
    resources = template["Resources"]
    topics = {a for _, alarm in of_type(resources, "AWS::CloudWatch::Alarm")
              for a in props(alarm).get("AlarmActions", []) if isinstance(a, str)}  # fmt: skip
    asserted = json.dumps(template.get("Rules", {}))
    return [
        f"alarm topic {topic} is not held to the stack's region by a template rule"
        for topic in topics
        if json.dumps([{"Ref": "AWS::Region"}, topic.split(":")[3]]) not in asserted
    ]


def dead_letter_queue_accepts_its_source(resources: Resources) -> list[str]:
    problems = []
    for queue_id, queue in of_type(resources, "AWS::SQS::Queue"):
        redrive = props(queue).get("RedrivePolicy")
        if not redrive:
            continue
        dlq_id = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
        dlq = props(resources[dlq_id])
        if bool(dlq.get("FifoQueue")) != bool(props(queue).get("FifoQueue")):
            problems.append(f"{queue_id}: a FIFO queue needs a FIFO DLQ, a standard one a standard DLQ")
        allow = dlq.get("RedriveAllowPolicy", {"redrivePermission": "allowAll"})
        name = props(queue).get("QueueName")
        if allow["redrivePermission"] == "denyAll" or (
            allow["redrivePermission"] == "byQueue"
            and not any(name and json.dumps(arn).endswith(f':{name}"]]}}') for arn in allow["sourceQueueArns"])
        ):
            problems.append(f"{queue_id}: its DLQ {dlq_id}'s redrive allow policy does not name it")
    return problems


def queue_names_are_valid(resources: Resources) -> list[str]:
    problems = []
    for queue_id, queue in of_type(resources, "AWS::SQS::Queue"):
        name = props(queue).get("QueueName")
        if name is None:
            continue
        fifo = bool(props(queue).get("FifoQueue"))
        if len(name) > 80 or name.endswith(".fifo") != fifo:
            problems.append(f"{queue_id}: queue name {name!r} (at most 80 characters, .fifo exactly for FIFO)")
    return problems


def payloads_outlive_the_messages_pointing_to_them(resources: Resources) -> list[str]:
    problems = []
    for mapping_id, _, queue, (function_id, function) in mappings(resources):
        bucket = props(function).get("Environment", {}).get("Variables", {}).get("PAYLOAD_BUCKET")
        if bucket is None:
            problems.append(f"{function_id}: no PAYLOAD_BUCKET in its environment")
            continue
        dlq = props(resources[queue["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]])
        # A quarantined copy starts the DLQ's retention anew, and a redriven one the queue's.
        needed = 2 * queue.get("MessageRetentionPeriod", 345_600) + dlq.get("MessageRetentionPeriod", 345_600)
        rules = props(resources[bucket["Ref"]]).get("LifecycleConfiguration", {}).get("Rules", [])
        for rule in rules:
            if "ExpirationInDays" in rule and rule["ExpirationInDays"] * 86_400 < needed:
                problems.append(f"{mapping_id}: payloads expire after {rule['ExpirationInDays']} days, before "
                                f"the {needed} s a message pointing to one can live")  # fmt: skip
    return problems


def subscribed_queues_accept_their_topic_first(resources: Resources) -> list[str]:
    problems = []
    for subscription_id, subscription in of_type(resources, "AWS::SNS::Subscription"):
        p = props(subscription)
        if p["Protocol"] != "sqs":
            continue
        queue = p["Endpoint"]["Fn::GetAtt"][0]
        accepting = [
            policy_id
            for policy_id, policy in of_type(resources, "AWS::SQS::QueuePolicy")
            if {"Ref": queue} in props(policy)["Queues"]
            for statement in props(policy)["PolicyDocument"]["Statement"]
            if statement["Effect"] == "Allow"
            and isinstance(statement["Principal"], dict)
            and statement["Principal"].get("Service") == "sns.amazonaws.com"
            and p["TopicArn"] in as_list(statement.get("Condition", {}).get("ArnEquals", {}).get("aws:SourceArn"))
        ]
        if not accepting:
            problems.append(f"{subscription_id}: the queue's policy does not let {p['TopicArn']} send")
        elif not set(accepting) & created_before(resources, subscription_id):
            problems.append(f"{subscription_id}: created before the queue policy that lets its topic send")
    return problems


def breaker_functions(resources: Resources) -> Iterator[tuple[str, dict[str, Any]]]:
    for function_id, function in of_type(resources, "AWS::Lambda::Function"):
        if props(function).get("Environment", {}).get("Variables", {}).get("BREAKERS_ENABLED") == "true":
            yield function_id, function


def breakers_update_only_their_own_mapping(resources: Resources) -> list[str]:
    problems = []
    for function_id, function in breaker_functions(resources):
        granted = [s for _, s in role_statements(resources, function_role(function))
                   if "lambda:UpdateEventSourceMapping" in as_list(s["Action"])]  # fmt: skip
        if not granted:
            problems.append(
                f"{function_id}: its role may not UpdateEventSourceMapping (its breakers pause its mapping)"
            )
        for statement in granted:
            arns = json.dumps(statement.get("Condition", {}).get("ArnLike", {}).get("lambda:FunctionArn"))
            if "event-source-mapping" not in json.dumps(statement["Resource"]) or f'"{function_id}"' not in arns:
                problems.append(f"{function_id}: UpdateEventSourceMapping not held to mappings invoking it "
                                "(event-source-mapping resource and the lambda:FunctionArn condition)")  # fmt: skip
    return problems


def probe_schedules_invoke_only_this_function(resources: Resources) -> list[str]:
    problems = []
    for function_id, function in breaker_functions(resources):
        name = props(function)["Environment"]["Variables"].get("PROBE_ROLE_NAME")
        roles = [lid for lid, role in of_type(resources, "AWS::IAM::Role") if props(role).get("RoleName") == name]
        if not roles:
            problems.append(f"{function_id}: PROBE_ROLE_NAME names no role of the stack")
            continue
        [role_id] = roles
        trust = json.dumps(props(resources[role_id])["AssumeRolePolicyDocument"])
        if "scheduler.amazonaws.com" not in trust:
            problems.append(f"{role_id}: EventBridge Scheduler may not assume the probe role")
        for _, statement in role_statements(resources, role_id):
            if as_list(statement["Action"]) != ["lambda:InvokeFunction"] or "*" in json.dumps(statement["Resource"]):
                problems.append(f"{role_id}: the probe role may do more than invoke the function")
        passes = [s for _, s in role_statements(resources, function_role(function)) if "iam:PassRole" in
                  as_list(s["Action"]) and role_id in json.dumps(s["Resource"])]  # fmt: skip
        if not passes or any(s.get("Condition", {}).get("StringEquals", {}).get("iam:PassedToService")
                             != "scheduler.amazonaws.com" for s in passes):  # fmt: skip
            problems.append(f"{function_id}: may not pass the probe role, or may pass it to another service")
        creates = [s for _, s in role_statements(resources, function_role(function))
                   if "scheduler:CreateSchedule" in as_list(s["Action"])]  # fmt: skip
        if not creates or any(s["Resource"] == "*" or "schedule/" not in json.dumps(s["Resource"]) for s in creates):
            problems.append(f"{function_id}: CreateSchedule missing, or not held to its schedule group")
    return problems


@dataclass(frozen=True)
class Rule:
    name: str
    source: str  # the AWS documentation page the requirement comes from
    check: Callable[[dict[str, Any]], list[str]]


def on_resources(check: Callable[[Resources], list[str]]) -> Callable[[dict[str, Any]], list[str]]:
    return lambda template: check(template["Resources"])


LAMBDA = "https://docs.aws.amazon.com/lambda/latest/dg"
RULES = (
    Rule("a VPC function's role holds the ENI actions before the function exists",
         f"{LAMBDA}/configuration-vpc.html#configuration-vpc-permissions",
         on_resources(vpc_function_role_can_manage_enis)),
    Rule("the role can poll the queue before the event source mapping is created",
         f"{LAMBDA}/services-sqs-configure.html#events-sqs-permissions",
         on_resources(mapping_role_can_poll_before_the_mapping_exists)),
    Rule("the queue's visibility timeout is at least the function's timeout",
         f"{LAMBDA}/services-sqs-configure.html#events-sqs-queueconfig",
         on_resources(queue_visibility_covers_function_timeout)),
    Rule("batch size and window within the mapping's limits",
         f"{LAMBDA}/services-sqs-parameters.html",
         on_resources(batching_rules_of_the_mapping)),
    Rule("provisioned mode excludes maximum concurrency; pollers in range",
         f"{LAMBDA}/services-sqs-scaling.html",
         on_resources(provisioned_mode_excludes_maximum_concurrency)),
    Rule("SnapStart: a supported runtime, a published version or alias as target, no EFS or provisioned concurrency",
         f"{LAMBDA}/snapstart.html",
         on_resources(snap_start_runtime_and_published_target)),
    Rule("SNS and EventBridge may send to the queue, on behalf of their named sources only",
         "https://docs.aws.amazon.com/sns/latest/dg/subscribe-sqs-queue-to-sns-topic.html; "
         "https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html#eb-sqs-permissions",
         on_resources(service_producers_may_send_from_their_source_only)),
    Rule("CloudWatch may publish alarms to the stack's topic",
         "https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Notify_Users_Alarm_Changes.html",
         on_resources(alarms_publish_to_a_topic_cloudwatch_may_use)),
    Rule("an existing alarm topic is in the stack's region",
         "https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html",
         existing_alarm_topic_is_in_the_stacks_region),
    Rule("the DLQ matches its queue's type and its redrive allow policy names the queue",
         "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html",
         on_resources(dead_letter_queue_accepts_its_source)),
    Rule("offloaded payloads outlive every message that can point to them",
         "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html; "
         "https://docs.aws.amazon.com/AmazonS3/latest/userguide/lifecycle-expire-general-considerations.html",
         on_resources(payloads_outlive_the_messages_pointing_to_them)),
    Rule("a subscribed queue lets its topic send before the subscription exists",
         "https://docs.aws.amazon.com/sns/latest/dg/subscribe-sqs-queue-to-sns-topic.html",
         on_resources(subscribed_queues_accept_their_topic_first)),
    Rule("breakers: UpdateEventSourceMapping only on the mappings that invoke the function",
         f"{LAMBDA}/lambda-api-permissions-ref.html",
         on_resources(breakers_update_only_their_own_mapping)),
    Rule("breakers: probe schedules run as a role that may only invoke the function, passed to Scheduler only",
         "https://docs.aws.amazon.com/scheduler/latest/UserGuide/setting-up.html#setting-up-execution-role",
         on_resources(probe_schedules_invoke_only_this_function)),
    Rule("queue names within SQS's limits",
         "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html",
         on_resources(queue_names_are_valid)),
)  # fmt: skip

SHAPES = {
    "every-option": FULL,
    "dev": {},
    "fifo": {"fifo": True, "content_based_deduplication": True},
    "own-topic": {**{k: v for k, v in FULL.items() if k != "alarm_topic_arn"}, "alarm_email": "oncall@example.org"},
    "two-consumers": TWO_CONSUMERS,
}


@pytest.fixture(scope="module")
def templates() -> dict[str, dict[str, Any]]:
    return {
        shape: dict(Template.from_stack(synth(shape, **settings)[1]).to_json()) for shape, settings in SHAPES.items()
    }


@pytest.mark.parametrize("rule", RULES, ids=[rule.name for rule in RULES])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_template_meets_what_aws_checks_at_deploy(templates, shape, rule):
    assert rule.check(templates[shape]) == [], f"{rule.name} ({rule.source})"


def test_the_every_option_stage_exercises_the_rules(templates):
    resources = templates["every-option"]["Resources"]
    [(_, function)] = of_type(resources, "AWS::Lambda::Function")
    [(_, mapping)] = of_type(resources, "AWS::Lambda::EventSourceMapping")
    assert "VpcConfig" in props(function) and "SnapStart" in props(function)
    assert "ProvisionedPollerConfig" in props(mapping) and list(of_type(resources, "AWS::Lambda::Alias"))
    assert "sns.amazonaws.com" in json.dumps(resources) and "events.amazonaws.com" in json.dumps(resources)
    assert list(of_type(resources, "AWS::SNS::Subscription")) and list(of_type(resources, "AWS::S3::Bucket"))


def broken(template: dict[str, Any], edit: Callable[[Resources], object]) -> dict[str, Any]:
    copied = copy.deepcopy(template)
    edit(copied["Resources"])
    return copied


def drop_statements(resources: Resources, action: str) -> None:
    for _, policy in of_type(resources, "AWS::IAM::Policy"):
        document = policy["Properties"]["PolicyDocument"]
        document["Statement"] = [s for s in document["Statement"] if action not in as_list(s["Action"])]


def first(resources: Resources, kind: str) -> dict[str, Any]:
    return next(of_type(resources, kind))[1]["Properties"]


def invoke_latest(resources: Resources) -> None:
    function_id = next(of_type(resources, "AWS::Lambda::Function"))[0]
    first(resources, "AWS::Lambda::EventSourceMapping")["FunctionName"] = {"Ref": function_id}


BREAKS: dict[str, tuple[str, Callable[[Resources], object]]] = {
    # Finding 1: the stack's own role without the ENI actions (what CDK leaves when you pass a role).
    "a VPC function's role holds the ENI actions before the function exists": (
        "every-option", lambda r: drop_statements(r, "ec2:CreateNetworkInterface")),
    "the role can poll the queue before the event source mapping is created": (
        "every-option", lambda r: drop_statements(r, "sqs:ReceiveMessage")),
    "the queue's visibility timeout is at least the function's timeout": (
        "dev", lambda r: first(r, "AWS::Lambda::Function").update(Timeout=900)),
    "batch size and window within the mapping's limits": (
        "fifo", lambda r: first(r, "AWS::Lambda::EventSourceMapping").update(BatchSize=11)),
    "provisioned mode excludes maximum concurrency; pollers in range": (
        "every-option", lambda r: first(r, "AWS::Lambda::EventSourceMapping").update(
            ScalingConfig={"MaximumConcurrency": 5})),
    "SnapStart: a supported runtime, a published version or alias as target, no EFS or provisioned concurrency": (
        "every-option", invoke_latest),
    "SNS and EventBridge may send to the queue, on behalf of their named sources only": (
        "every-option", lambda r: [s.pop("Condition", None) for _, p in of_type(r, "AWS::SQS::QueuePolicy")
                                   for s in p["Properties"]["PolicyDocument"]["Statement"]]),
    "CloudWatch may publish alarms to the stack's topic": (
        "own-topic", lambda r: [p["Properties"]["PolicyDocument"].update(Statement=[])
                                for _, p in of_type(r, "AWS::SNS::TopicPolicy")]),
    "the DLQ matches its queue's type and its redrive allow policy names the queue": (
        "dev", lambda r: [q["Properties"].update(QueueName="renamed") for _, q in of_type(r, "AWS::SQS::Queue")
                          if "RedrivePolicy" in q["Properties"]]),
    "offloaded payloads outlive every message that can point to them": (
        "two-consumers", lambda r: [b["Properties"]["LifecycleConfiguration"]["Rules"][0].update(ExpirationInDays=18)
                                    for _, b in of_type(r, "AWS::S3::Bucket")]),
    "a subscribed queue lets its topic send before the subscription exists": (
        "every-option", lambda r: [s.pop("DependsOn") for _, s in of_type(r, "AWS::SNS::Subscription")]),
    "breakers: UpdateEventSourceMapping only on the mappings that invoke the function": (
        "dev", lambda r: [s.pop("Condition", None) for _, p in of_type(r, "AWS::IAM::Policy")
                          for s in p["Properties"]["PolicyDocument"]["Statement"]
                          if "lambda:UpdateEventSourceMapping" in as_list(s["Action"])]),
    "breakers: probe schedules run as a role that may only invoke the function, passed to Scheduler only": (
        "dev", lambda r: [s.update(Resource="*") for _, p in of_type(r, "AWS::IAM::Policy")
                          for s in p["Properties"]["PolicyDocument"]["Statement"]
                          if as_list(s["Action"]) == ["lambda:InvokeFunction"]]),
    "queue names within SQS's limits": (
        "fifo", lambda r: [q["Properties"].update(QueueName="no-suffix") for _, q in of_type(r, "AWS::SQS::Queue")
                           if "QueueName" in q["Properties"]]),
}  # fmt: skip


@pytest.mark.parametrize("rule", RULES, ids=[rule.name for rule in RULES])
def test_each_rule_reports_a_template_that_breaks_it(templates, rule):
    if rule.check is existing_alarm_topic_is_in_the_stacks_region:
        template = copy.deepcopy(templates["every-option"])
        template["Rules"].pop("DeployedInTheStagesRegion")
    else:
        shape, edit = BREAKS[rule.name]
        template = broken(templates[shape], edit)
    assert rule.check(template) != []
