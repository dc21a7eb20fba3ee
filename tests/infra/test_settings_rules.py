"""Each synth-time rule (docs/design.md §5) fails with a message naming the setting and the bound."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.function_environment import function_environment
from infra.settings import StackSettings, StackSettingsError
from sqs_consumer.payload_store import max_payload_for

ROOT = Path(__file__).resolve().parents[2]


def settings(**values: object) -> StackSettings:
    return StackSettings.for_stage("test", {"test": values})


def test_defaults_mirror_the_seed_but_for_five_receives_before_the_dlq():
    s = settings()
    assert (s.batch_size, s.visibility_timeout_seconds, s.receive_wait_time_seconds) == (10, 300, 20)
    # AWS recommends a maxReceiveCount of at least 5 for a queue Lambda reads: the seed's 3 retries give 4.
    assert (s.max_retries, s.max_receive_count) == (4, 5)
    # Each retry after its backoff's ceiling (base 10 s doubling), well inside the visibility timeout and the cap.
    assert s.retry_delays_seconds == (10, 20, 40, 80)


def test_every_stage_of_cdk_json_has_five_receives_and_retries_that_end_before_the_retention():
    stages = json.loads((ROOT / "cdk.json").read_text())["context"]["stages"]
    for stage in stages:
        for s in [StackSettings.for_stage(stage, stages), *StackSettings.consumers_for_stage(stage, stages).values()]:
            assert s.max_receive_count >= 5, stage
            assert s.longest_retry_seconds < s.retention_period_seconds, stage


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param({"function_timeout_seconds": 60}, r"visibility_timeout_seconds \(300\) must be >= 6 x "
                     r"function_timeout_seconds \(60\) \+ max_batching_window_seconds \(0\) = 360", id="visibility"),
        pytest.param({"max_batching_window_seconds": 130, "batch_size": 100},
                     r"visibility_timeout_seconds \(300\) must be >= .* = 310", id="visibility-with-window"),
        pytest.param({"reserved_concurrency": 2}, r"reserved_concurrency \(2\) must be >= max_concurrency \(3\)",
                     id="reserved-below-max"),
        pytest.param({"dlq_retention_period_seconds": 345_600},
                     r"dlq_retention_period_seconds \(345600\) must be > retention_period_seconds \(345600\)",
                     id="dlq-retention"),
        pytest.param({"fifo": True, "batch_size": 11, "max_batching_window_seconds": 1},
                     r"batch_size \(11\) must be <= 10 for a FIFO queue", id="fifo-batch"),
        pytest.param({"fifo": True, "max_batching_window_seconds": 1},
                     r"max_batching_window_seconds \(1\) must be 0 for a FIFO queue", id="fifo-window"),
        pytest.param({"batch_size": 11}, r"batch_size \(11\) > 10 needs max_batching_window_seconds >= 1",
                     id="large-batch-needs-window"),
        pytest.param({"time_reserve_seconds": 30}, r"time_reserve_seconds \(30.0\) must be < function_timeout_seconds",
                     id="reserve"),
        pytest.param({"content_based_deduplication": True}, r"content_based_deduplication needs fifo", id="dedup"),
        pytest.param({"max_concurrency": 1}, r"max_concurrency: Input should be greater than or equal to 2",
                     id="esm-min-concurrency"),
        pytest.param({"batch_size": 10_001}, r"batch_size: Input should be less than or equal to 10000",
                     id="batch-max"),
        pytest.param({"log_retention_days": 31}, r"log_retention_days \(31\) must be one of", id="log-retention"),
        pytest.param({"max_message_size_bytes": 1_048_576},
                     r"dlq_max_message_size_bytes \(1048576\) must be >= max_message_size_bytes \(1048576\) \+ 2048 "
                     r"for the quarantine reason = 1050624 \(SQS allows 1048576 at most\): lower "
                     r"max_message_size_bytes to at most 1046528", id="queue-at-sqs-maximum"),
        pytest.param({"max_message_size_bytes": 262_144, "dlq_max_message_size_bytes": 262_144},
                     r"dlq_max_message_size_bytes \(262144\) must be >= .* = 264192 .*: raise "
                     r"dlq_max_message_size_bytes to 264192", id="dlq-as-large-as-queue"),
        pytest.param({"retry_backoff_base_seconds": 400},
                     r"retry_backoff_base_seconds \(400\) must be <= retry_backoff_cap_seconds \(300\)",
                     id="backoff"),
        pytest.param({"max_retries": 20, "retention_period_seconds": 3_600},
                     r"max_retries \(20\) retries of a failing message take up to 6,000 s .* not less than "
                     r"retention_period_seconds \(3600\): it would expire before reaching the DLQ",
                     id="retries-outlast"),
        pytest.param({"bacth_size": 5}, r"bacth_size: Extra inputs are not permitted", id="typo"),
        pytest.param({"max_payload_size_bytes": 32 * 1_048_576},
                     r"max_payload_size_bytes \(33,554,432\) is more than a function of function_memory_mb \(256\) "
                     r"can parse: 4,660,337 bytes at most .* raise function_memory_mb to at least 1249",
                     id="payload-memory"),
        pytest.param({"function_memory_mb": 512, "max_payload_size_bytes": max_payload_for(512) + 1},
                     r"Lower max_payload_size_bytes to 12,\d{3},\d{3} or raise function_memory_mb to at least 513",
                     id="payload-edge"),
    ],
)  # fmt: skip
def test_rule_violation_names_setting_and_bound(values, message):
    with pytest.raises(StackSettingsError, match=message):
        settings(**values)


def test_the_largest_payload_reaches_the_function_and_fits_its_memory():
    # The default fits the default memory (and the function parses it in the worst case), and the function
    # fetches exactly what the stage allows.
    default = settings()
    assert default.max_payload_size_bytes <= max_payload_for(default.function_memory_mb)
    environment = function_environment(settings(max_payload_size_bytes=50 * 1_048_576, function_memory_mb=1_897),
                                       "https://sqs/dlq", None)  # fmt: skip
    assert environment["MAX_PAYLOAD_BYTES"] == str(50 * 1_048_576)


def test_unknown_stage_lists_known_ones():
    with pytest.raises(StackSettingsError, match=r"unknown stage 'qa'.*known: dev, prod"):
        StackSettings.for_stage("qa", {"dev": {}, "prod": {}})


def test_every_stage_in_cdk_json_is_valid():
    stages = json.loads((ROOT / "cdk.json").read_text())["context"]["stages"]
    for stage in stages:
        StackSettings.for_stage(stage, stages)


def test_app_exits_non_zero_with_the_message_on_a_bad_setting(tmp_path):
    # GIVEN the CDK app run as `cdk synth` runs it, with a stage that breaks a rule
    context = {"stage": "bad", "stages": {"bad": {"reserved_concurrency": 1}}}
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(tmp_path)}

    # WHEN it runs
    result = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, check=False)

    # THEN it fails with one readable line, not a traceback
    assert result.returncode != 0
    assert "error: invalid settings for stage 'bad': " in result.stderr
    assert "reserved_concurrency (1) must be >= max_concurrency (3)" in result.stderr
    assert "Traceback" not in result.stderr
