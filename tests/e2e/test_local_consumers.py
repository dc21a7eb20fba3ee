"""The local pipeline runs any consumer of the stage's stack (`make local CONSUMER=orders`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from local import demo
from local.pipeline import running_pipeline
from local.template import TemplateError, load_plan
from tests.e2e.conftest import settle

pytestmark = pytest.mark.e2e


def test_the_plan_picks_a_consumer_by_name(local_template: Path):
    first, orders = load_plan(local_template), load_plan(local_template, "orders")
    assert not first.source_queue.fifo and orders.source_queue.fifo and orders.dead_letter_queue.fifo
    assert first.function.logical_id != orders.function.logical_id
    assert orders.function.environment["POWERTOOLS_SERVICE_NAME"] == "sqs-consumer-orders"
    with pytest.raises(TemplateError, match=r"no consumer 'payments' in the template \(its consumers: \"\", orders\)"):
        load_plan(local_template, "payments")


def test_the_fifo_consumer_accounts_for_the_demo_mix(local_template: Path, tmp_path: Path):
    # GIVEN the stage's FIFO consumer under the emulator and the demo mix in one message group
    ledger = demo.Ledger()
    with running_pipeline(local_template, tmp_path, on_batch=ledger.on_batch, consumer="orders") as pipeline:
        mix = demo.demo_mix(demo.offloader(pipeline.server.endpoint_url, pipeline.payload_bucket))
        published = demo.publish(pipeline.client, pipeline.queue.url, mix, "demo")
        expected = {mid: m.expected for mid, m in published.items()}

        # WHEN the mapping polls until nothing is in flight
        states, dead = settle(pipeline, published, ledger, seconds=120)

    # THEN every message reached its expected state, in its own consumer's queues
    assert states == expected
    assert len(mix) == len(published) and {m.label for m in mix} >= {"SNS notification", "offloaded to S3 (1.1 MB)"}
    assert ledger.invocations["function_error"] == 0
    assert sum(ledger.invocations.values()) >= 2
    assert dead and all(letter.kind and letter.reason for letter in dead.values())
