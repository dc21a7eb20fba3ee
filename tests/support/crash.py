"""Crashes as Lambda has them: the process running the entry point is SIGKILLed mid-batch.

Each trial sends one batch to a fresh process (crash_child.py) against the local pipeline's store
(moto_server, its DynamoDB writes isolated), kills it ``kill_after`` seconds into the batch, waits
until the in-progress records of the killed invocation have expired (as SQS's visibility timeout,
at least 6x the function timeout, guarantees before a redelivery), then delivers the same batch
again to a new process that runs to the end. Every handler's effect is a ``Hello`` line with its
time, so the sweep knows which effects ran twice and how long before the kill each one returned.
With ``shapes``, the batch also holds SNS-wrapped, EventBridge and offloaded events (their payloads
in moto_server's S3), as upstream services send them.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from local.pipeline import resolve_environment
from local.sqs_server import (
    LOCAL_CREDENTIALS,
    REGION,
    SqsServer,
    create_buckets,
    create_queues,
    create_tables,
    dynamodb_client,
)
from local.template import load_plan
from sqs_consumer.settings import ConsumerSettings
from sqs_consumer.testing import events as sqs
from sqs_consumer.testing.events import eventbridge_event, pointer_body, size_attribute, sns_notification

ROOT = Path(__file__).resolve().parents[2]
# The invocation's remaining time when the batch starts: its claims' in-progress records expire then.
REMAINING_MS = 2_500
TIME_RESERVE_MS = 500
# The redelivery runs to its end: time enough for every record.
REDELIVERY_REMAINING_MS = 30_000
# Async handlers awaited together (the local stage's 2 would make a batch outlast its 2.5 s).
MAX_CONCURRENT_RECORDS = 4
RECORDS = 10
PAYLOAD_BUCKET = "crash-payloads"
FOLLOWUP_DESTINATIONS = ("audit", "next")


@dataclass(frozen=True)
class Trial:
    kill_after_s: float
    # The seconds before the kill at which each effect of the killed invocation happened.
    returned_before_kill: dict[str, float]
    effects: Counter[str]
    event_ids: list[str]
    # A store write's time (p90) while the killed invocation ran: on a busy machine, longer than when idle.
    round_trip_s: float = 0.0

    def ran_twice(self, window_s: float) -> list[str]:
        """Events whose handler returned more than ``window_s`` before the kill and ran again."""
        return [e for e, before in self.returned_before_kill.items() if before > window_s and self.effects[e] > 1]

    def returned_outside(self, window_s: float) -> int:
        """How many effects returned more than ``window_s`` before the kill: those the trial checks."""
        return sum(1 for before in self.returned_before_kill.values() if before > window_s)

    @property
    def never_ran(self) -> list[str]:
        return [event_id for event_id in self.event_ids if self.effects[event_id] == 0]


@dataclass
class Sweep:
    strategy: str
    round_trip_s: float
    trials: list[Trial] = field(default_factory=list)

    def window_s(self, trial: Trial) -> float:
        """Two store round trips: what group commit may still have in flight when the process dies (a round
        trip as measured before the sweep, or during the trial if the machine was busier then)."""
        return 2 * max(self.round_trip_s, trial.round_trip_s)

    def ran_twice(self) -> int:
        return sum(len(trial.ran_twice(self.window_s(trial))) for trial in self.trials)

    def ran_twice_in_all(self) -> int:
        return sum(sum(1 for count in trial.effects.values() if count > 1) for trial in self.trials)

    def effects_before_kill(self) -> int:
        return sum(trial.returned_outside(self.window_s(trial)) for trial in self.trials)


class CrashRig:
    """moto_server with the local stage's queues and table, and the function's environment for it."""

    def __init__(
        self, template: Path, log_dir: Path, latency_ms: int = 25, *, shapes: bool = False, followups: bool = False
    ) -> None:
        self.log_dir = log_dir
        self.latency_ms = latency_ms
        self.shapes = shapes
        plan = load_plan(template)
        self.server = SqsServer(log_dir / "moto.log")
        queues = create_queues(self.server.client(), plan)
        tables = create_tables(self.server.endpoint_url, plan)
        self.table = next(iter(tables.values()))
        buckets = create_buckets(self.server.endpoint_url, plan)
        environment = resolve_environment(plan, queues, tables, self.server.endpoint_url, buckets)
        environment[ConsumerSettings.env_name("log_level")] = "DEBUG"
        environment[ConsumerSettings.env_name("time_reserve_ms")] = str(TIME_RESERVE_MS)
        environment[ConsumerSettings.env_name("max_concurrent_records")] = str(MAX_CONCURRENT_RECORDS)
        self.environment = {
            **os.environ, **environment, "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "functions" / "consumer")]),
            "POWERTOOLS_METRICS_DISABLED": "true", "AWS_LAMBDA_FUNCTION_NAME": "consumer",
        }  # fmt: skip
        self.queue_arn = queues[plan.source_queue.logical_id].arn
        # Follow-up destinations: two queues of the local server, the handler emitting one to each.
        self.destinations: dict[str, str] = {}
        if followups:
            client = self.server.client()
            self.destinations = {name: client.create_queue(QueueName=f"followups-{name}")["QueueUrl"]
                                 for name in FOLLOWUP_DESTINATIONS}  # fmt: skip
            self.environment[ConsumerSettings.env_name("followup_queues")] = json.dumps(self.destinations)
        self._s3: Any = None
        if shapes:
            import boto3
            from botocore.config import Config

            self._s3 = boto3.client("s3", endpoint_url=self.server.endpoint_url, region_name=REGION,
                                    config=Config(s3={"addressing_style": "path"}),
                                    aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                                    aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])  # fmt: skip
            self._s3.create_bucket(Bucket=PAYLOAD_BUCKET)

    def stop(self) -> None:
        self.server.stop()

    def drain_destinations(self) -> list[dict[str, Any]]:
        """Every follow-up the destination queues hold, received and deleted."""
        client, bodies = self.server.client(), []
        for url in self.destinations.values():
            empty = 0
            while empty < 3:  # moto answers from a part of the queue: empty three times over is empty
                messages = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
                empty = 0 if messages else empty + 1
                for message in messages:
                    bodies.append(json.loads(message["Body"]))
                    client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return bodies

    def round_trip_s(self, samples: int = 30) -> float:
        """One store write as the function sees it: the injected latency plus moto's own time (p90)."""
        client = dynamodb_client(self.server.endpoint_url)
        return self.latency_ms / 1000 + statistics.quantiles([self._write(client) for _ in range(samples)], n=10)[-1]

    def _write(self, client: Any) -> float:
        """The seconds one write of 10 items takes moto_server."""
        started = time.perf_counter()
        items = [{"PutRequest": {"Item": {"id": {"S": f"probe-{uuid.uuid4()}-{n}"}}}} for n in range(10)]
        client.batch_write_item(RequestItems={self.table: items})
        return time.perf_counter() - started

    @contextmanager
    def _round_trips_meanwhile(self, times: list[float]) -> Iterator[None]:
        """Store writes timed every 50 ms for the block's length, into ``times``."""
        client, stop = dynamodb_client(self.server.endpoint_url), threading.Event()

        def sample() -> None:
            while not stop.wait(0.05):
                times.append(self._write(client))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            yield
        finally:
            stop.set()
            sampler.join()

    def batch(self, seed: int, receive_count: int) -> tuple[dict[str, Any], list[str]]:
        """Mixed fast (sync) and slow (async, 50-600 ms) handlers, new event ids each time."""
        rng = random.Random(seed)
        records, ids = [], []
        for index in range(RECORDS):
            event_id = f"evt_crash_{seed}_{index}_{uuid.uuid4().hex[:6]}"
            payload: dict[str, Any] = {"name": f"crash-{index}"}
            if rng.random() < 0.6:
                payload.update(simulate="slow", delay_ms=rng.randint(50, 600))
            message_id = str(uuid.uuid5(uuid.NAMESPACE_URL, event_id))
            body, attributes = self._shaped(index, sqs.body("hello", payload, event_id=event_id))
            records.append(sqs.record(body, message_id=message_id, receive_count=receive_count,
                                      queue_arn=self.queue_arn, message_attributes=attributes))  # fmt: skip
            ids.append(event_id)
        return {"Records": records}, ids

    def _shaped(self, index: int, body: str) -> tuple[str, dict[str, Any] | None]:
        """The event alone, or (with ``shapes``) in an SNS notification, an EventBridge event or S3."""
        shape = index % 4 if self.shapes else 0
        if shape == 1:
            return sns_notification(body), None
        if shape == 2:
            return eventbridge_event(json.loads(body)), None
        if shape == 3:
            key = f"crash/{uuid.uuid4()}"
            self._s3.put_object(Bucket=PAYLOAD_BUCKET, Key=key, Body=body.encode())
            return pointer_body(PAYLOAD_BUCKET, key), size_attribute(len(body.encode()))
        return body, None

    def trial(self, strategy: str, seed: int, kill_after_s: float) -> Trial:
        first, ids = self.batch(seed, receive_count=1)
        again = {"Records": [dict(r, attributes={**r["attributes"], "ApproximateReceiveCount": "2"})
                             for r in first["Records"]]}  # fmt: skip
        # Both processes start together: the redelivery's imports overlap the first one's batch.
        killed = _Child(self, strategy, first, f"{seed}-1", REMAINING_MS)
        redelivered = _Child(self, strategy, again, f"{seed}-2", REDELIVERY_REMAINING_MS)
        busy: list[float] = []
        killed.go()
        with self._round_trips_meanwhile(busy):
            time.sleep(kill_after_s)
            killed_at = time.time()
            killed.kill()
        # SQS redelivers only after the visibility timeout, by when every in-progress record has expired.
        time.sleep(max(0.0, killed.started_at + REMAINING_MS / 1000 + 0.2 - time.time()))
        redelivered.go()
        redelivered.finish()
        before_kill = {event_id: killed_at - at for event_id, at in killed.effects()}
        effects = Counter(event_id for event_id, _ in killed.effects() + redelivered.effects())
        # p90 within what was seen (few samples in a short trial: the exclusive method would reach past the slowest)
        round_trip = (
            self.latency_ms / 1000 + statistics.quantiles(busy, n=10, method="inclusive")[-1] if len(busy) >= 3 else 0.0
        )
        return Trial(kill_after_s, before_kill, effects, ids, round_trip)

    def sweep(self, strategy: str, kill_points: list[float], round_trip_s: float) -> Sweep:
        result = Sweep(strategy, round_trip_s)
        for seed, kill_after in enumerate(kill_points):
            result.trials.append(self.trial(strategy, seed * 7919 + len(strategy), kill_after))
        return result


@dataclass(frozen=True)
class FollowUpTrial:
    """One batch whose process was SIGKILLed at ``point`` of its follow-ups' way, then delivered again."""

    point: str
    killed: bool
    # Each follow-up expected (its parent's event_id and position) -> the event_ids it was received with.
    received: dict[tuple[str, int], set[str]]
    effects: Counter[str]
    # Records the redelivery acknowledged as duplicates (their follow-ups, if left, sent from the store).
    duplicates: int

    @property
    def lost(self) -> list[tuple[str, int]]:
        return sorted(key for key, ids in self.received.items() if not ids)

    @property
    def with_two_ids(self) -> list[tuple[str, int]]:
        return sorted(key for key, ids in self.received.items() if len(ids) > 1)


def followup_trial(rig: CrashRig, point: str, seed: int) -> FollowUpTrial:
    """A batch of new events whose handler emits a follow-up to each destination, the process SIGKILLing itself
    at ``point``; the same batch delivered again once its in-progress records expired; what the queues got."""
    first, ids = rig.batch(seed, receive_count=1)
    again = {"Records": [dict(r, attributes={**r["attributes"], "ApproximateReceiveCount": "2"})
                         for r in first["Records"]]}  # fmt: skip
    killed = _Child(rig, f"followups:{point}", first, f"{seed}-1", REMAINING_MS)
    redelivered = _Child(rig, "followups:none", again, f"{seed}-2", REDELIVERY_REMAINING_MS)
    killed.go()
    code = killed.process.wait(60)
    killed._reader.join(5)
    time.sleep(max(0.0, killed.started_at + REMAINING_MS / 1000 + 0.2 - time.time()))
    redelivered.go()
    redelivered.finish()
    received: dict[tuple[str, int], set[str]] = {(e, p): set() for e in ids for p in range(len(rig.destinations))}
    for body in rig.drain_destinations():
        parent, _, position = body["payload"]["name"].rpartition("/")
        if (parent, int(position)) in received:
            received[(parent, int(position))].add(body["event_id"])
    effects = Counter(event_id for event_id, _ in killed.effects() + redelivered.effects())
    duplicates = sum('"Duplicate acknowledged' in line for line in redelivered.lines)
    return FollowUpTrial(point, code == -signal.SIGKILL, received, effects, duplicates)


class _Child:
    def __init__(self, rig: CrashRig, strategy: str, event: dict[str, Any], name: str, remaining_ms: int) -> None:
        event_path = rig.log_dir / f"{strategy}-{name}.event.json"
        event_path.write_text(json.dumps(event))
        self.out_path = rig.log_dir / f"{strategy}-{name}.out"
        self._out: IO[str] = self.out_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.crash_child", strategy, str(event_path), str(remaining_ms),
             str(rig.latency_ms)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._out, env=rig.environment, text=True,
            cwd=ROOT,
        )  # fmt: skip
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.started_at = 0.0

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._out.write(line)
            if self._ready.is_set():
                self.lines.append(line)
            elif line.strip() == "ready":
                self._ready.set()

    def go(self) -> None:
        if not self._ready.wait(60):
            raise RuntimeError(f"the crash child never got ready: see {self.out_path}")
        assert self.process.stdin is not None
        self.started_at = time.time()
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self._reader.join(5)

    def finish(self) -> None:
        if self.process.wait(60) != 0:
            raise RuntimeError(f"the redelivery failed: see {self.out_path}")
        self._reader.join(5)

    def effects(self) -> list[tuple[str, float]]:
        """(event_id, when) of each Hello line."""
        found = []
        for line in self.lines:
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            if record.get("message") == "Hello":
                when = datetime.strptime(record["timestamp"], "%Y-%m-%d %H:%M:%S,%f%z").timestamp()
                found.append((record["event_id"], when))
        return found
