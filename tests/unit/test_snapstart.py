"""SnapStart: the init phase prepares what it can and nothing that breaks on restore."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

from sqs_consumer.retry import Backoff
from sqs_consumer.settings import ConsumerSettings

ROOT = Path(__file__).resolve().parents[2]

# Imports the handler as the runtime does at init, with every outgoing connection refused.
INIT = """
import json, socket, sys
attempts = []
def refuse(self, address):
    attempts.append(str(address))
    raise OSError("no network at init")
socket.socket.connect = refuse
import sqs_consumer.handler as handler
print(json.dumps({
    "consumer_built": handler._consumer.cache_info().currsize,
    "modules": sorted(name for name in ("boto3", "botocore.session") if name in sys.modules),
    "connections": attempts,
    "sqs_pattern_compiled": sys.modules["sqs_consumer.sqs_limits"]._forbidden.cache_info().currsize,
}))
"""


def _init(initialization_type: str) -> dict[str, object]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [os.environ.get("PYTHONPATH", ""), str(ROOT), str(ROOT / "functions" / "consumer")]
        ),
        "AWS_LAMBDA_INITIALIZATION_TYPE": initialization_type,
        "AWS_REGION": "us-east-1",
        ConsumerSettings.env_name("dlq_url"): "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
        ConsumerSettings.env_name("idempotency_table"): "idempotency",
    }
    result = subprocess.run([sys.executable, "-c", INIT], env=env, capture_output=True, text=True, check=True)
    report: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_snapshot_init_builds_the_consumer_and_loads_botocore_without_a_connection():
    report = _init("snap-start")
    assert report["consumer_built"] == 1
    assert report["modules"] == ["botocore.session"]
    assert report["connections"] == []


def test_on_demand_init_stays_light():
    report = _init("on-demand")
    assert report["consumer_built"] == 0
    assert report["modules"] == []
    # the pattern of what SQS refuses is compiled by the first text it cleans, not at init
    assert report["sqs_pattern_compiled"] == 0


def test_environments_restored_from_one_snapshot_draw_different_jitter():
    # Environments restored from one snapshot hold the same random-module state (a restore, unlike
    # a fork, runs no at-fork reseeding): jitter drawn from that state would be the same in each,
    # and their retries would arrive together.
    backoff = Backoff(10, 300)
    snapshot = random.getstate()
    draws = []
    for _ in range(2):
        random.setstate(snapshot)  # this environment, just restored
        draws.append([backoff.delay(5) for _ in range(8)])
    assert draws[0] != draws[1]
