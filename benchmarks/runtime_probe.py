"""Runs inside the Lambda runtime's Python, from a read-only copy of a built asset.

Started by benchmarks/lambda_runtime.py as ``python3.14 runtime_probe.py MODE ...``,
with ``PYTHONPATH`` holding only what Lambda's search path holds (the task folder,
and for the naive reference the runtime's own boto3). It imports nothing from this
repository: only the asset's code and the standard library.

- ``cold HANDLER EVENT_FILE``: import the handler's module, as the runtime client does,
  and handle one event; print the milliseconds from before the import to the response.
- ``modules HANDLER EVENT_FILE``: the same as ``cold``, then print every module imported from
  a file, with that file, and the bytecode magic number of this Python.
- ``per-record HANDLER EVENT_FILE REPEATS``: the handler's entry point and a bare
  Powertools ``BatchProcessor`` that parses the same contract, alternated on one event;
  print their medians in microseconds per record.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import io
import json
import statistics
import sys
import time
from typing import Any

_started = time.perf_counter()


class Context:
    """The attributes of Lambda's context object that handlers read."""

    function_name = "consumer"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:consumer"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    log_group_name = "/aws/lambda/consumer"
    log_stream_name = "2026/11/28/[$LATEST]0123456789abcdef"

    def __init__(self, timeout_ms: int = 30_000) -> None:
        self._deadline = time.monotonic() + timeout_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


def _handler(spec: str) -> Any:
    module, _, name = spec.rpartition(".")
    return getattr(importlib.import_module(module), name)


def cold(spec: str, event: dict[str, Any], *, list_modules: bool = False) -> None:
    # What awslambdaric does before the first invocation: import the handler's module.
    with contextlib.redirect_stdout(io.StringIO()):
        handler = _handler(spec)
        response = handler(event, Context())
    elapsed_ms = (time.perf_counter() - _started) * 1000
    failures = response.get("batchItemFailures") if isinstance(response, dict) else None
    if failures:
        raise SystemExit(f"the first batch listed {len(failures)} failure(s): {failures[:3]}")
    if not list_modules:
        print(json.dumps({"ms": elapsed_ms}))
        return
    import importlib.util

    files = {name: getattr(module, "__file__", None) for name, module in list(sys.modules.items())}
    print(json.dumps({"magic": importlib.util.MAGIC_NUMBER.hex(), "modules": {k: v for k, v in files.items() if v}}))


def per_record(spec: str, event: dict[str, Any], repeats: int) -> None:
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
    from pydantic import BaseModel, ConfigDict

    class Payload(BaseModel):
        name: str

    class Contract(BaseModel):
        """The message contract's envelope, typed: what the bare reference parses each body into."""

        model_config = ConfigDict(extra="ignore")
        event_id: str
        event_type: str
        occurred_at: str
        payload: Payload

    def bare(record: Any) -> None:
        Contract.model_validate_json(record.body)

    def reference() -> Any:
        return process_partial_response(event, bare, BatchProcessor(EventType.SQS), None)

    size = len(event["Records"])
    with contextlib.redirect_stdout(io.StringIO()):
        handler = _handler(spec)
        context = Context(timeout_ms=900_000)

        def ours_once() -> Any:
            return handler(event, context)

        for warm in (ours_once, reference):
            warm()
        ours: list[float] = []
        bare_samples: list[float] = []
        for repeat in range(repeats):
            if repeat % 50 == 0:
                gc.collect()
            for samples, action in ((ours, ours_once), (bare_samples, reference)):
                started = time.perf_counter()
                response = action()
                samples.append(time.perf_counter() - started)
                if response["batchItemFailures"]:
                    raise SystemExit(f"a batch listed failures: {response['batchItemFailures'][:3]}")
    print(json.dumps({"ours_us": statistics.median(ours) / size * 1e6,
                      "bare_us": statistics.median(bare_samples) / size * 1e6}))  # fmt: skip


def main() -> None:
    mode, spec, event_file, *rest = sys.argv[1:]
    with open(event_file, encoding="utf-8") as source:
        event = json.load(source)
    if mode in {"cold", "modules"}:
        cold(spec, event, list_modules=mode == "modules")
    else:
        per_record(spec, event, int(rest[0]))


if __name__ == "__main__":
    main()
