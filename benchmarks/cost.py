"""Cost per million messages, from measured durations (docs/cost.md is written by `make bench`).

Prices: US East (N. Virginia), on-demand, free tiers left out, as published on
https://aws.amazon.com/lambda/pricing/ (arm64 duration, requests),
https://aws.amazon.com/sqs/pricing/ (standard queue requests) and
https://aws.amazon.com/fargate/pricing/ (Linux/x86 vCPU-hour and GB-hour). They were checked on
2026-11-28 against price guides that quote those pages: cloudburn.io (SQS and Fargate, March 2026),
factualminds.com (SQS, June 2026), vantage.sh (Fargate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from planning.prices import price_sheet

# One file holds the unit prices, their pages and the date they were checked: planning/prices.toml.
_PRICES = price_sheet("us-east-1")
PRICES_CHECKED_ON = _PRICES.checked_on
LAMBDA_ARM_GB_SECOND = _PRICES.prices["lambda_arm64_gb_second"]
LAMBDA_REQUEST = _PRICES.prices["lambda_request"]
SQS_REQUEST = _PRICES.prices["sqs_standard_request"]
FARGATE_VCPU_HOUR = _PRICES.prices["fargate_vcpu_hour"]
FARGATE_GB_HOUR = _PRICES.prices["fargate_gb_hour"]
HOURS_PER_MONTH = 730
# Lambda gives a full vCPU at 1,769 MB and a proportional share below; CPU time
# measured on one core here is scaled by this factor at the stack's memory.
FULL_VCPU_MB = 1_769
STACK_MEMORY_MB = 256
IO_WAIT_MS = 50
IN_BATCH_CONCURRENCY = 10
# The seed worker: 3 replicas with requests 250m/256Mi and limits 500m/512Mi. Fargate
# sizes round up: 0.25 vCPU needs at least 0.5 GB; 0.5 vCPU at least 1 GB.
SEED_REPLICAS = 3
SEED_TASK_SIZES = {"requests (0.25 vCPU, 0.5 GB)": (0.25, 0.5), "limits (0.5 vCPU, 1 GB)": (0.5, 1.0)}
# Pollers keep long-polling an empty queue: 20 s waits, Lambda's minimum of 5 pollers.
ESM_IDLE_RECEIVES_PER_MONTH = 5 * 3 * 60 * HOURS_PER_MONTH

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT = ROOT / "docs" / "cost.md"


@dataclass(frozen=True)
class Scenario:
    batch_size: int
    handler: str
    batch_ms: float  # billed duration of one invocation on Lambda, estimated

    @property
    def invocations_per_million(self) -> float:
        return 1_000_000 / self.batch_size

    @property
    def lambda_requests(self) -> float:
        return self.invocations_per_million * LAMBDA_REQUEST

    @property
    def lambda_duration(self) -> float:
        billed_seconds = math.ceil(self.batch_ms) / 1000
        return self.invocations_per_million * billed_seconds * STACK_MEMORY_MB / 1024 * LAMBDA_ARM_GB_SECOND

    @property
    def sqs_requests(self) -> float:
        # Producer: SendMessageBatch of 10. Mapping: one ReceiveMessage per 10 messages
        # and one DeleteMessageBatch per 10 deleted.
        sends = 1_000_000 / 10
        receives = 1_000_000 / min(10, self.batch_size)
        deletes = 1_000_000 / 10
        return (sends + receives + deletes) * SQS_REQUEST

    @property
    def total(self) -> float:
        return self.lambda_requests + self.lambda_duration + self.sqs_requests


def scenarios(cpu_ms_per_record: dict[int, float]) -> list[Scenario]:
    """Per batch size, a light handler (measured CPU time, scaled to the stack's memory) and an
    I/O-bound one (each record also waits 50 ms, ``IN_BATCH_CONCURRENCY`` at a time)."""
    scale = FULL_VCPU_MB / STACK_MEMORY_MB
    result = []
    for size in (10, 100):
        cpu_ms = cpu_ms_per_record[size] * size * scale
        waves = math.ceil(size / IN_BATCH_CONCURRENCY)
        result.append(Scenario(size, "light", cpu_ms))
        result.append(Scenario(size, f"I/O-bound ({IO_WAIT_MS} ms per record)", cpu_ms + waves * IO_WAIT_MS))
    return result


def seed_worker_monthly() -> dict[str, float]:
    return {
        name: SEED_REPLICAS * (vcpu * FARGATE_VCPU_HOUR + gb * FARGATE_GB_HOUR) * HOURS_PER_MONTH
        for name, (vcpu, gb) in SEED_TASK_SIZES.items()
    }


def render_summary(rows: list[Scenario]) -> str:
    lines = [
        "| batch | handler | est. duration per invocation | Lambda requests | Lambda duration | SQS requests "
        "| total per 1M messages |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for s in rows:
        lines.append(
            f"| {s.batch_size} | {s.handler} | {s.batch_ms:.1f} ms | ${s.lambda_requests:.4f} | "
            f"${s.lambda_duration:.4f} | ${s.sqs_requests:.4f} | **${s.total:.4f}** |"
        )
    return "\n".join(lines)


def render_document(cpu_ms_per_record: dict[int, float], machine: str) -> str:
    rows = scenarios(cpu_ms_per_record)
    seed = seed_worker_monthly()
    idle = ESM_IDLE_RECEIVES_PER_MONTH * SQS_REQUEST
    volumes = (1_000_000, 10_000_000, 100_000_000)
    light10 = next(s for s in rows if s.batch_size == 10 and s.handler == "light")
    seed_rows = [
        f"| {volume:,} | ${light10.total * volume / 1e6 + idle:,.2f} | "
        + " | ".join(f"${monthly + light10.sqs_requests * volume / 1e6:,.2f}" for monthly in seed.values())
        + " |"
        for volume in volumes
    ]
    return f"""# Cost per million messages

Generated by `make bench` (benchmarks/cost.py) from the durations it measured; do not edit by hand.

Prices: US East (N. Virginia), on-demand, free tiers left out: Lambda arm64
${LAMBDA_ARM_GB_SECOND:.10f}/GB-s and ${LAMBDA_REQUEST * 1e6:.2f} per million requests
(aws.amazon.com/lambda/pricing); SQS standard ${SQS_REQUEST * 1e6:.2f} per million requests
(aws.amazon.com/sqs/pricing); Fargate Linux/x86 ${FARGATE_VCPU_HOUR}/vCPU-hour and
${FARGATE_GB_HOUR}/GB-hour (aws.amazon.com/fargate/pricing). Checked on {PRICES_CHECKED_ON} against
price guides quoting those pages (cloudburn.io, March 2026; factualminds.com, June 2026; vantage.sh).
Not included: the idempotency table (DynamoDB on-demand: one conditional put and one update per
message, one read more for a duplicate), CloudWatch Logs ingestion and alarms, which both designs pay
in some form.

How the durations are estimated: the CPU time per record of the full pipeline was measured on
{machine} ({", ".join(f"{size}-record batches: {ms * 1000:.1f} us/record" for size, ms in cpu_ms_per_record.items())}).
Lambda gives a function of {STACK_MEMORY_MB} MB {STACK_MEMORY_MB / FULL_VCPU_MB:.2f} of a vCPU, so CPU time
is multiplied by {FULL_VCPU_MB / STACK_MEMORY_MB:.1f}. The I/O-bound handler adds {IO_WAIT_MS} ms of waiting per
record, {IN_BATCH_CONCURRENCY} records at a time. Billing rounds each invocation up to the millisecond.
SQS requests: the producer sends in batches of 10, the mapping receives up to 10 messages per call
and deletes in batches of 10.

{render_summary(rows)}

## Beside the seed's always-on worker

The seed ran 3 replicas around the clock. On Fargate its task size rounds up to 0.25 vCPU / 0.5 GB
(requests) or 0.5 vCPU / 1 GB (limits): {", ".join(f"${v:,.2f}" for v in seed.values())} a month before
SQS requests, whatever the traffic. The Lambda consumer costs nothing when idle except the mapping's
long polls (about {ESM_IDLE_RECEIVES_PER_MONTH:,} empty receives, ${idle:.2f} a month).

Monthly cost for the light handler, batch 10 (both sides pay the same SQS requests per message):

| messages per month | Lambda consumer | seed worker, {" | seed worker, ".join(seed)} |
|---:|---:|{"---:|" * len(seed)}
{chr(10).join(seed_rows)}
"""


def write_document(cpu_ms_per_record: dict[int, float], machine: str) -> None:
    DOCUMENT.write_text(render_document(cpu_ms_per_record, machine))
