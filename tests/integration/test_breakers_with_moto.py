"""The breakers' adapters against moto_server: the shared state under concurrent instances, the mapping's
pause and resume through Lambda's API, the probe's one-time schedule, a record sent again to its queue."""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest

from local.sqs_server import SqsServer, dynamodb_client, local_client
from sqs_consumer.budget import Deadline
from sqs_consumer.dependencies import PROBE_KEY, Dependency
from sqs_consumer.dependencies.board import PROBE, BoardWiring, BreakerBoard
from sqs_consumer.dependencies.breaker import BreakerMode, BreakerPolicy
from sqs_consumer.dependencies.control import LambdaMappingControl, SchedulerProbes
from sqs_consumer.dependencies.store import DynamoDBBreakerStore
from sqs_consumer.resend import ResentMessage, SqsResender
from sqs_consumer.testing.fakes import FakeMapping, RecordingProbes

TABLE = "breakers-idempotency"
POLICY = BreakerPolicy(threshold=5, window_seconds=10, cool_down_seconds=15, cool_down_cap_seconds=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqsServer]:
    running = SqsServer(tmp_path_factory.mktemp("breakers") / "moto.log")
    try:
        dynamodb_client(running.endpoint_url).create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield running
    finally:
        running.stop()


def client(server: SqsServer, service: str) -> Any:
    from botocore.config import Config

    return local_client(service, server.endpoint_url, Config())


def test_instances_failing_at_once_open_the_breaker_once(server: SqsServer):
    # GIVEN 6 instances, each with its own client and mapping control, over one table
    mapping, probes = FakeMapping(), RecordingProbes()
    boards = [BreakerBoard(BoardWiring(lambda: DynamoDBBreakerStore(TABLE, dynamodb_client(server.endpoint_url)),
                                       POLICY, mapping, probes, cache_seconds=0)) for _ in range(6)]  # fmt: skip
    start = threading.Barrier(len(boards))

    def fail(board: BreakerBoard) -> None:
        board.states(["payments-api"])
        start.wait()
        board.report({"payments-api": (2, "HTTP 503")}, [], "arn:aws:sqs:us-east-1:123456789012:q")

    # WHEN each reports 2 failures at the same moment (12 in all, the threshold 5)
    threads = [threading.Thread(target=fail, args=(board,)) for board in boards]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # THEN the breaker is open, and exactly one instance paused the mapping and scheduled the probe
    state = DynamoDBBreakerStore(TABLE, dynamodb_client(server.endpoint_url)).read(["payments-api"])["payments-api"]
    assert state.mode is BreakerMode.OPEN
    assert [enabled for _, enabled, _ in mapping.changes] == [False]
    assert [step for _, step, _, _ in probes.scheduled] == [PROBE]


def test_instances_racing_for_a_half_open_trial_let_exactly_one_take_it(server: SqsServer):
    # GIVEN a breaker opened, then half-open after its probe (no health check), and 6 instances over one table
    def made() -> BreakerBoard:
        return BreakerBoard(BoardWiring(lambda: DynamoDBBreakerStore(TABLE, dynamodb_client(server.endpoint_url)),
                                        POLICY, FakeMapping(), RecordingProbes(), cache_seconds=0))  # fmt: skip

    queue = "arn:aws:sqs:us-east-1:123456789012:q"
    opener = made()
    opener.report({"inventory-api": (5, "HTTP 503")}, [], queue)
    opener.wiring.clock = lambda: time.time() + 15
    assert opener.probe(Dependency("inventory-api"), PROBE, queue).mode is BreakerMode.HALF_OPEN
    boards = [made() for _ in range(6)]
    start = threading.Barrier(len(boards))
    trials: list[frozenset[str]] = []

    def admit(board: BreakerBoard) -> None:
        board.wiring.clock = lambda: time.time() + 16
        states = board.states(["inventory-api"])
        start.wait()
        trials.append(board.admit(states, queue).trials)

    # WHEN all read it half-open and try to take its trial at the same moment
    threads = [threading.Thread(target=admit, args=(board,)) for board in boards]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # THEN exactly one got it (the others hold their records back), and the store says so
    assert sorted(len(taken) for taken in trials) == [0] * 5 + [1]
    stored = DynamoDBBreakerStore(TABLE, dynamodb_client(server.endpoint_url)).read(["inventory-api"])
    assert stored["inventory-api"].trial_at is not None


def test_a_stale_version_is_refused_with_the_state_that_won(server: SqsServer):
    store = DynamoDBBreakerStore(TABLE, dynamodb_client(server.endpoint_url))
    first = store.read(["search-api"])["search-api"]
    from sqs_consumer.dependencies.breaker import with_failures

    assert store.write("search-api", first.version, with_failures(first, 1, 100.0, POLICY, "x")) is None
    refused = store.write("search-api", first.version, with_failures(first, 2, 100.0, POLICY, "y"))

    assert refused is not None and refused.failures == 1 and refused.version == first.version + 1


def function_with_mapping(server: SqsServer, name: str) -> tuple[str, str]:
    """A function in moto's Lambda, and its mapping of a new queue (moto does not run the code)."""
    iam, lam, sqs = client(server, "iam"), client(server, "lambda"), client(server, "sqs")
    role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17",
                           "Statement": []}))["Role"]["Arn"]  # fmt: skip
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("index.py", "def handler(event, context):\n    return None\n")
    lam.create_function(FunctionName=name, Runtime="python3.12", Role=role, Handler="index.handler",
                        Code={"ZipFile": code.getvalue()})  # fmt: skip
    url = sqs.create_queue(QueueName=f"{name}-queue")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    lam.create_event_source_mapping(FunctionName=name, EventSourceArn=arn, BatchSize=10,
                                    ScalingConfig={"MaximumConcurrency": 10})  # fmt: skip
    return arn, url


def test_the_mapping_is_paused_and_resumed_through_lambdas_api(server: SqsServer):
    # GIVEN a function reading a queue at MaximumConcurrency 10
    queue_arn, _ = function_with_mapping(server, "breaker-consumer")
    control = LambdaMappingControl("breaker-consumer", client_factory=lambda service, _: client(server, service))

    # WHEN it pauses its mapping, then resumes it at the minimum
    control.pause(queue_arn)
    paused = control.describe(queue_arn)
    control.resume(queue_arn, 2)
    resumed = control.describe(queue_arn)

    # THEN Lambda's API shows it disabled, then enabled at concurrency 2
    assert paused.enabled is False
    assert (resumed.enabled, resumed.max_concurrency) == (True, 2)


def test_a_probe_is_a_one_time_schedule_invoking_the_function_with_a_probe_event(server: SqsServer):
    scheduler = client(server, "scheduler")
    scheduler.create_schedule_group(Name="consumer-probes")
    probes = SchedulerProbes("consumer-probes", "consumer-probe",
                             client_factory=lambda service, _: client(server, service))  # fmt: skip
    target = "arn:aws:lambda:us-east-1:123456789012:function:consumer:live"

    probes.schedule("orders-api", PROBE, 1_796_540_400.0, "arn:aws:sqs:us-east-1:123456789012:q", target)
    probes.schedule("orders-api", PROBE, 1_796_540_400.0, "arn:aws:sqs:us-east-1:123456789012:q", target)  # again

    schedule = scheduler.get_schedule(GroupName="consumer-probes", Name="probe-orders-api-probe-1796540400")
    assert schedule["ScheduleExpression"] == "at(2026-12-06T07:00:00)"
    assert schedule["Target"]["Arn"] == target
    assert schedule["Target"]["RoleArn"] == "arn:aws:iam::123456789012:role/consumer-probe"
    assert json.loads(schedule["Target"]["Input"])[PROBE_KEY]["dependency"] == "orders-api"


def test_a_record_sent_again_keeps_its_body_attributes_and_trace_header(server: SqsServer):
    sqs = client(server, "sqs")
    url = sqs.create_queue(QueueName="resent-queue")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    attributes = {"tenant": {"stringValue": "t-1", "dataType": "String"}}
    trace = "Root=1-6942a1b0-5f3c7e0a9b1d2c3e4f506172;Parent=53995c3f42cd8ad8;Sampled=1"
    resender = SqsResender(endpoint_url=server.endpoint_url, client_factory=lambda _: sqs)

    results = resender.send_batch([ResentMessage(arn, '{"event_id": "e-1"}', attributes, 0, trace_header=trace)],
                                  Deadline(lambda: 10_000, 0))  # fmt: skip

    assert results == [None]
    [message] = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"],
                                    WaitTimeSeconds=1)["Messages"]  # fmt: skip
    assert message["Body"] == '{"event_id": "e-1"}'
    assert message["MessageAttributes"] == {"tenant": {"StringValue": "t-1", "DataType": "String"}}
    assert message["Attributes"]["AWSTraceHeader"] == trace  # the copy stays in its producer's trace


def test_four_instances_hold_a_rate_limit_of_20_per_second_together(server: SqsServer):
    # GIVEN 4 instances, each with its own client, leasing from one bucket of 20/s (burst 20)
    from sqs_consumer.dependencies.rate import DynamoDBTokenStore, RateLimit, RateLimiter

    limit = RateLimit(rate_per_second=20, burst=20)

    def store() -> DynamoDBTokenStore:
        return DynamoDBTokenStore(TABLE, dynamodb_client(server.endpoint_url))

    instances = [RateLimiter({"ledger-api": limit}, store) for _ in range(4)]
    calls: list[float] = []
    lock, start = threading.Lock(), threading.Barrier(len(instances))
    seconds, began = 10.0, time.monotonic()

    def call_as_fast_as_allowed(limiter: RateLimiter) -> None:
        start.wait()
        while time.monotonic() - began < seconds:
            if limiter.acquire(["ledger-api"], budget_seconds=1.0) is None:
                with lock:
                    calls.append(time.monotonic())

    # WHEN they call as fast as their tokens allow for 10 s
    threads = [threading.Thread(target=call_as_fast_as_allowed, args=(limiter,)) for limiter in instances]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # THEN never more calls than the bucket had tokens (the burst, then 20 a second until the last call),
    # and no fewer than 90 % of the 10 s of tokens
    per_second = (len(calls) - limit.capacity) / seconds
    print(f"4 instances at a limit of 20/s: {len(calls)} calls in {seconds:g} s ({per_second:.1f}/s after the burst)")
    assert len(calls) <= limit.capacity + 20 * (max(calls) - began)
    assert len(calls) >= 0.9 * 20 * seconds
