"""The planner tied to something that really ran: the local pipeline's drain time of a burst.

Calibration: the planner gets the `local` stage from cdk.json and what a warm-up run measured (the
time each record took in its invocation, and moto's receive round trip), then predicts how long a
burst of 200 messages takes to drain through the emulated mapping and the function under the Lambda
emulator. Tolerance: 35% (a loaded machine stretches the run's invocations; the planner's
inputs come from a run of its own), around the predictions from a warm-up before the burst and one after
it: on a machine whose load changed during the burst, the two differ.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from statistics import mean

import pytest

from infra.settings import StackSettings
from local.event_source import BatchResult, EventSourceMapping
from local.pipeline import Pipeline, running_pipeline
from planning.model import Mapping
from planning.planner import plan
from planning.workload import MIN_RECEIVE_MS, ArrivalProfile, Burst, HandlerTime, Workload

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 0.35
HANDLER_DELAY_MS = 40
WARM_UP = 40
BURST = 150


def send_burst(pipeline: Pipeline, count: int) -> None:
    for start in range(0, count, 10):
        entries = [
            {
                "Id": str(i),
                "MessageBody": json.dumps(
                    {
                        "event_id": f"evt_{uuid.uuid4().hex}",
                        "event_type": "hello",
                        "payload": {"name": "burst", "simulate": "slow", "delay_ms": HANDLER_DELAY_MS},
                    }
                ),
            }
            for i in range(min(10, count - start))
        ]
        pipeline.client.send_message_batch(QueueUrl=pipeline.queue.url, Entries=entries)  # type: ignore[arg-type]


def drain(pipeline: Pipeline, count: int, timeout: float) -> tuple[float, list[BatchResult]]:
    """Start the emulated mapping on the waiting messages; seconds until ``count`` were deleted."""
    batches: list[BatchResult] = []
    wait = int(pipeline.plan.source_queue.attributes.get("ReceiveMessageWaitTimeSeconds", "0"))
    mapping = EventSourceMapping(pipeline.client, pipeline.queue, pipeline.plan.mapping, pipeline.functions,
                                 wait_time_seconds=wait, on_batch=batches.append)  # fmt: skip
    started = time.monotonic()
    mapping.start()
    try:
        while sum(len(b.deleted) for b in batches) < count and time.monotonic() - started < timeout:
            time.sleep(0.05)
        elapsed = time.monotonic() - started
    finally:
        mapping.stop()
    assert not mapping.errors, mapping.errors
    return elapsed, batches


def predicted_drain(stage: StackSettings, warm_up_seconds: float, warm_up: list[BatchResult], instances: int) -> float:
    """The planner's drain time of the burst, fed what a warm-up run measured: each record's share of its
    invocation, and the mapping's own time a batch (receive, the emulator's invoke round trip, delete), as
    the round trips of a receive and of its settling."""
    per_record_ms = [b.duration_seconds * 1000 / len(b.message_ids) for b in warm_up]
    cycle_ms = warm_up_seconds * 1000 * instances / len(warm_up)
    in_function_ms = mean(b.duration_seconds * 1000 for b in warm_up)
    workload = Workload(
        ArrivalProfile(0, bursts=(Burst(0, BURST),)),
        HandlerTime.measured(per_record_ms),
        receive_ms=max(2 * MIN_RECEIVE_MS, cycle_ms - in_function_ms) / 2,
    )
    return plan(Mapping.of(stage), workload).bursts[0].seconds_to_drain


def test_planner_fed_local_stage_and_measured_times_predicts_local_burst_drain(local_template: Path, tmp_path):
    stages = json.loads((ROOT / "cdk.json").read_text())["context"]["stages"]
    stage = StackSettings.for_stage("local", stages)
    with running_pipeline(local_template, tmp_path, poll=False) as pipeline:
        instances = len(pipeline.functions)
        # GIVEN what a run measured once every instance was warm (init is not a record's time)
        send_burst(pipeline, instances)
        drain(pipeline, instances, timeout=60)
        send_burst(pipeline, WARM_UP)
        before = predicted_drain(stage, *drain(pipeline, WARM_UP, timeout=60), instances)

        # WHEN the planner predicts the drain of a burst, and the local pipeline runs it
        send_burst(pipeline, BURST)
        measured, batches = drain(pipeline, BURST, timeout=10 * before + 30)
        # (and once more after it: a machine whose load changed during the burst gives two predictions)
        send_burst(pipeline, WARM_UP)
        after = predicted_drain(stage, *drain(pipeline, WARM_UP, timeout=60), instances)

    # THEN the run is within the tolerance of the predictions made before and after it
    print(  # a figure for the log, not an assertion on speed
        f"local burst of {BURST}: predicted {before:.1f} s (from the warm-up before) and {after:.1f} s (after), "
        f"measured {measured:.1f} s ({len(batches)} invocations)"
    )
    assert sum(len(b.deleted) for b in batches) == BURST
    low, high = min(before, after), max(before, after)
    assert (1 - TOLERANCE) * low <= measured <= (1 + TOLERANCE) * high, (before, after, measured)
