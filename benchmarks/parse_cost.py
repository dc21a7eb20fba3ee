"""`python -m benchmarks.parse_cost [--quick]`: what parsing an offloaded payload costs in memory, and
a batch of the largest payloads through the entry point within the function's memory.

1. Parse cost per payload byte: the peak resident memory a parse adds, divided by the text's size,
   for each shape (documents with line items; the worst valid JSON: arrays of empty arrays, objects
   with many keys; a root that is an array) and each way to parse (pydantic's validate_json on the
   text; json.loads, then validate_python). The function parses payloads with json.loads (the least),
   and payload_store.PARSE_BYTES_PER_PAYLOAD_BYTE must cover the worst shape (target <= 28).
2. Peak RSS of one invocation of the Lambda handler with the dev stage's memory (cdk.json; 256 MB) and
   bound (MAX_PAYLOAD_BYTES): a batch of 10 offloaded documents at the bound (line items) plus one
   poison payload at the bound (a JSON array), fetched from moto's S3 on loopback, idempotency on
   (moto's DynamoDB), the poison quarantined to moto's SQS. Target: below the function's memory, and
   every record disposed (10 succeeded, 1 quarantined, none listed).

Each figure comes from a fresh process under CPython 3.14 when it can be had (infra/runtime_python.py),
its peak read from /proc/self/status (VmHWM).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The CDK's jsii runtime (imported with the stack's settings) would print Node's end-of-life banner.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")
ROOT = Path(__file__).resolve().parents[1]
MIB = 1_048_576
DEV_MEMORY_MB = 256
MULTIPLIER_TARGET = "<= 28"
BATCH = 10
SHAPES = ("line_items", "empty_arrays", "empty_objects", "many_keys", "array_root")
WAYS = ("validate_json", "json.loads")

# The shapes, as Python source the child runs: build(shape, size) -> bytes of about ``size``.
BUILD = r"""
def _parts(part_of, room):
    # part_of(0), part_of(1), ... while they fit in ``room`` bytes, each with its comma.
    parts, total = [], 0
    while total + len(part_of(len(parts))) + 1 <= room:
        parts.append(part_of(len(parts)))
        total += len(parts[-1]) + 1
    return parts


def build(shape, size):
    head = '{"event_id":"e-1","event_type":"document.processed","payload":{"document_id":"doc-1",'
    if shape == "line_items":
        item = ('{"sku":"SKU-%06d","description":"Widget model %06d, blue","quantity":%d,'
                '"unit_price":"%d.50","currency":"EUR"}')
        parts = _parts(lambda index: item % (index, index, index % 9 + 1, index % 97), size - len(head) - 20)
        return (head + '"line_items":[' + ",".join(parts) + "]}}").encode()
    if shape in ("empty_arrays", "empty_objects"):
        empty = "[]" if shape == "empty_arrays" else "{}"
        return (head + '"x":[' + ",".join([empty] * ((size - len(head) - 10) // 3)) + "]}}").encode()
    if shape == "many_keys":
        parts = _parts(lambda index: '"%x":0' % index, size - len(head) - 10)
        return (head + '"x":{' + ",".join(parts) + "}}}").encode()
    if shape == "array_root":
        return ("[" + ",".join(["[]"] * ((size - 2) // 3)) + "]").encode()
    raise ValueError(shape)
"""

MULTIPLIER = (
    BUILD
    + r"""
import json, sys
from sqs_consumer.routes import REGISTRY

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

shape, way, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
text = build(shape, size)
validate_json, validate_python = REGISTRY.validate_json, REGISTRY.adapter.validator.validate_python
validate_json(b'{"event_id":"e","event_type":"hello","payload":{"name":"n"}}')  # the validator built
open("/proc/self/clear_refs", "w").write("5")  # VmHWM from here
before = status("VmRSS")
try:
    if way == "validate_json":
        event = validate_json(text)
    else:
        document = json.loads(text)
        event = validate_python(document)
except Exception as exc:  # the poison's cost is its failed parse
    event = None
print(json.dumps({"bytes": len(text), "peak": status("VmHWM") - before}))
"""
)

BATCH_CHILD = r"""
import json, os, sys
sys.argv = sys.argv[:1]
from sqs_consumer import handler

class Context:
    function_name = "consumer"
    memory_limit_in_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:consumer"
    aws_request_id = "req-1"
    def get_remaining_time_in_millis(self):
        return 30_000

event = json.load(sys.stdin)
out = sys.stdout
sys.stdout = open(os.devnull, "w")  # the function's logs
response = handler.lambda_handler(event, Context())
sys.stdout = out
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print(json.dumps({"peak_kib": int(status["VmHWM"].split()[0]), "response": response}))
"""


@dataclass(frozen=True)
class Multiplier:
    shape: str
    way: str
    payload_bytes: int
    peak_bytes: int

    @property
    def per_byte(self) -> float:
        return self.peak_bytes / self.payload_bytes


@dataclass(frozen=True)
class BatchPeak:
    memory_mb: int
    payload_bytes: int
    peak_mb: float
    succeeded: int
    quarantined: list[str]
    listed: int
    python: str


def interpreter() -> tuple[list[str], dict[str, str], str]:
    """The runtime's CPython 3.14 with the function's pinned dependencies, or this interpreter."""
    paths = [str(ROOT), str(ROOT / "functions" / "consumer")]
    try:
        from infra import runtime_python
        from tests.runtime import site

        python = runtime_python.install()
        return [*python], {"PYTHONPATH": os.pathsep.join([str(site()), *paths])}, f"CPython {runtime_python.VERSION}"
    except Exception as exc:  # no 3.14 here: measured on this interpreter, said so
        print(f"(CPython 3.14 not available: {exc}; measured on {sys.version.split()[0]})", file=sys.stderr)
        return [sys.executable], {"PYTHONPATH": os.pathsep.join(paths)}, f"CPython {sys.version.split()[0]}"


def multipliers(size: int) -> list[Multiplier]:
    python, env, _ = interpreter()
    found = []
    for shape in SHAPES:
        for way in WAYS:
            out = subprocess.run([*python, "-c", MULTIPLIER, shape, way, str(size)], capture_output=True, text=True,
                                 check=True, env={**os.environ, **env}, cwd=ROOT).stdout  # fmt: skip
            figures = json.loads(out.strip().splitlines()[-1])
            found.append(Multiplier(shape, way, figures["bytes"], figures["peak"]))
    return found


def dev_bound() -> tuple[int, int]:
    """The dev stage's memory (MB) and payload bound (bytes), as the stack gives them to the function."""
    from infra.settings import StackSettings

    stages = json.loads((ROOT / "cdk.json").read_text())["context"]["stages"]
    settings = StackSettings.model_validate(stages.get("dev") or {})
    return settings.function_memory_mb, settings.max_payload_size_bytes


def batch_peak(memory_mb: int | None = None, payload_bytes: int | None = None, size: int | None = None) -> BatchPeak:
    """One invocation of the handler on 10 documents at the bound and one poison payload at the bound
    (or of ``size`` bytes each: the runtime's own figure with small ones)."""
    from local.sqs_server import LOCAL_CREDENTIALS, SqsServer, dynamodb_client, s3_client

    dev_memory, dev_payload = dev_bound()
    memory_mb = memory_mb or dev_memory
    payload_bytes = payload_bytes or dev_payload
    python, env, version = interpreter()
    server = SqsServer()
    try:
        endpoint = server.endpoint_url
        s3, sqs = s3_client(endpoint), server.client()
        s3.create_bucket(Bucket="payloads")
        dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        dynamodb_client(endpoint).create_table(
            TableName="idempotency", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
        )  # fmt: skip
        namespace: dict[str, Any] = {}
        exec(BUILD, namespace)  # the shapes the multipliers are measured on
        records = []
        for index in range(BATCH + 1):
            poison = index == BATCH
            key = "poison" if poison else f"doc-{index}"
            data = namespace["build"]("array_root" if poison else "line_items", (size or payload_bytes) - 64)
            if not poison:
                data = data.replace(b'"e-1"', f'"e-{index}"'.encode(), 1)
            s3.put_object(Bucket="payloads", Key=key, Body=data)
            body = json.dumps(["software.amazon.payloadoffloading.PayloadS3Pointer",
                               {"s3BucketName": "payloads", "s3Key": key}])  # fmt: skip
            records.append({
                "messageId": f"m-{index}", "receiptHandle": f"r-{index}", "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
                "messageAttributes": {"ExtendedPayloadSize": {"stringValue": str(len(data)), "dataType": "Number",
                                                              "stringListValues": [], "binaryListValues": []}},
                "eventSource": "aws:sqs", "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:queue",
            })  # fmt: skip
        child_env = {**os.environ, **LOCAL_CREDENTIALS, **env, "AWS_ENDPOINT_URL": endpoint, "DLQ_URL": dlq,
                     "IDEMPOTENCY_TABLE": "idempotency", "PAYLOAD_BUCKET": "payloads",
                     "MAX_PAYLOAD_BYTES": str(payload_bytes), "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
                     "AWS_LAMBDA_FUNCTION_NAME": "consumer", "MAX_RECEIVE_COUNT": "4",
                     "POWERTOOLS_METRICS_NAMESPACE": "bench", "POWERTOOLS_SERVICE_NAME": "consumer"}  # fmt: skip
        out = subprocess.run([*python, "-c", BATCH_CHILD], input=json.dumps({"Records": records}), env=child_env,
                             capture_output=True, text=True, check=True, cwd=ROOT).stdout  # fmt: skip
        figures = json.loads(out.strip().splitlines()[-1])
        messages = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        kinds = [
            str(message["MessageAttributes"]["quarantine.kind"]["StringValue"])
            for message in messages.get("Messages", [])
        ]
    finally:
        server.stop()
    listed = len(figures["response"]["batchItemFailures"])
    succeeded = BATCH + 1 - listed - len(kinds)
    return BatchPeak(memory_mb, size or payload_bytes, figures["peak_kib"] / 1024, succeeded, kinds,
                     listed, version)  # fmt: skip


@dataclass(frozen=True)
class Figures:
    multipliers: list[Multiplier]
    batch: BatchPeak


def run(quick: bool = False) -> Figures:
    return Figures(multipliers(2 * MIB if quick else 8 * MIB), batch_peak())


def render(figures: Figures) -> str:
    lines = [f"Parse cost per payload byte (peak RSS added / JSON bytes), {figures.batch.python}:",
             f"{'shape':<16} {'MiB':>6} " + " ".join(f"{way:>14}" for way in WAYS)]  # fmt: skip
    by_shape: dict[str, dict[str, Multiplier]] = {}
    for item in figures.multipliers:
        by_shape.setdefault(item.shape, {})[item.way] = item
    for shape, ways in by_shape.items():
        size = next(iter(ways.values())).payload_bytes / MIB
        lines.append(f"{shape:<16} {size:>6.1f} " + " ".join(f"{ways[way].per_byte:>14.1f}" for way in WAYS))
    batch = figures.batch
    lines.append(
        f"Handler, {BATCH} documents of {batch.payload_bytes / MIB:.1f} MiB + 1 poison payload, idempotency on: "
        f"peak RSS {batch.peak_mb:.0f} MB of {batch.memory_mb} MB; {batch.succeeded} succeeded, "
        f"quarantined {batch.quarantined}, {batch.listed} listed"
    )
    return "\n".join(lines)


def markdown(figures: Figures) -> str:
    """The parse-cost section of docs/performance.md."""
    by_shape: dict[str, dict[str, Multiplier]] = {}
    for item in figures.multipliers:
        by_shape.setdefault(item.shape, {})[item.way] = item
    batch = figures.batch
    lines = ["", "## Parsing offloaded payloads", "",
             f"`python -m benchmarks.parse_cost` ({batch.python}, a fresh process per figure, peak RSS from VmHWM). "
             "Peak memory a parse adds per byte of JSON:", "",
             "| shape | MiB | validate_json | json.loads + validate_python |", "|---|---|---|---|"]  # fmt: skip
    for shape, ways in by_shape.items():
        size = next(iter(ways.values())).payload_bytes / MIB
        lines.append(
            f"| {shape} | {size:.1f} | {ways['validate_json'].per_byte:.1f} | {ways['json.loads'].per_byte:.1f} |"
        )
    lines += ["",
              "validate_json builds pydantic-core's own tree of the document before the Python objects, and an error "
              "carries the whole input converted to Python: a root that is not an object costs the most. json.loads "
              "builds the Python objects alone. So an offloaded payload is parsed once, with json.loads, after its "
              "first byte says its root is an object; the SQS body keeps its fast path (validate_json), and a body "
              "that fails it is unwrapped from the root its error carries, never parsed again. The worst shape "
              "(arrays of empty arrays: 3 bytes of text, 80 of objects) sets PARSE_BYTES_PER_PAYLOAD_BYTE = 28; the "
              "stack refuses a MAX_PAYLOAD_BYTES over (memory - 96 MB of runtime - the prefetch) / 28 "
              "(payload_store.max_payload_for), and within a batch a further payload is parsed only while the memory "
              "held leaves room for its worst case (it is listed otherwise, and comes back).", "",
              f"Through the handler, memory {batch.memory_mb} MB, idempotency on: {BATCH} documents of "
              f"{batch.payload_bytes / MIB:.1f} MiB (line items) plus one JSON array of the same size: peak RSS "
              f"**{batch.peak_mb:.0f} MB**; {batch.succeeded} succeeded, quarantined {batch.quarantined}, "
              f"{batch.listed} listed. The runtime alone (the same batch with 8 KiB payloads) peaks at about "
              "80 MB."]  # fmt: skip
    return "\n".join(lines) + "\n"


def verdicts(figures: Figures) -> list[Any]:
    from benchmarks.report import Verdict

    worst = max(item.per_byte for item in figures.multipliers if item.way == "json.loads")
    batch = figures.batch
    measured = f"peak {batch.peak_mb:.0f} MB of {batch.memory_mb} MB"
    return [
        Verdict("payload parse: worst bytes per byte (json.loads)", worst, MULTIPLIER_TARGET,
                f"{worst:.1f} per byte"),
        Verdict("batch of payloads at the bound: peak RSS / memory", batch.peak_mb / batch.memory_mb, "<= 1", measured),
        Verdict("batch of payloads at the bound: records not disposed", float(batch.listed), "<= 0",
                f"{batch.succeeded} succeeded, {len(batch.quarantined)} quarantined"),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.parse_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="2 MiB texts instead of 8 MiB")
    args = parser.parse_args(argv)
    figures = run(args.quick)
    print(render(figures))
    from benchmarks.report import MISSED, render_verdicts

    judged = verdicts(figures)
    print(render_verdicts(judged))
    return 1 if any(item.outcome == MISSED for item in judged) else 0


if __name__ == "__main__":
    sys.exit(main())
