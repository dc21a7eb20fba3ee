"""What AWS documents about the event source mapping and the function, as numbers and small formulas.

Limits follow the newest AWS pages (docs/decisions/041-planning-aws-numbers.md): a standard mapping
starts 5 concurrent batches, adds up to 300 a minute while messages wait, at most 1,250; provisioned
mode keeps ``minimum`` pollers ready, each driving up to 10 concurrent invokes, and adds up to 1,000
concurrent invokes a minute, at most 20,000. The unit of the model is a *reader*: one batch being
gathered or processed, so the number of readers is the mapping's concurrency.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from infra.settings import StackSettings
from planning.workload import Workload

STANDARD_INITIAL_BATCHES = 5
STANDARD_SCALE_UP_PER_MINUTE = 300
STANDARD_MAX_BATCHES = 1_250
PROVISIONED_INVOKES_PER_POLLER = 10
# "Each poller can handle up to 1 MB/sec throughput" (the SQS event source mapping page). Read as
# 10^6 bytes, the conservative of the two readings: 400 msg/s of 256 KiB need 105 pollers, not 100.
PROVISIONED_BYTES_PER_POLLER = 1_000_000
PROVISIONED_SCALE_UP_PER_MINUTE = 1_000
PROVISIONED_MAX_CONCURRENCY = 20_000
ACCOUNT_DEFAULT_CONCURRENCY = 1_000
# Lambda keeps this many of the account's executions unreserved: reservations cannot take them.
UNRESERVED_MINIMUM = 100
MESSAGES_PER_RECEIVE = 10
INVOCATION_PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024
# Lambda's record around each body (ids, receipt handle, attributes, md5): about 1 KB in events/.
RECORD_ENVELOPE_BYTES = 1_024
# An offloaded payload travels as a pointer in the body (the extended client libraries' format).
POINTER_BODY_BYTES = 300
# Memory a warm Python function uses before its batch: the runtime, Powertools, botocore (about).
BASE_MEMORY_MB = 90
# A body is held as received, as a string and as parsed objects: about four times its size.
PAYLOAD_MEMORY_FACTOR = 4
MB = 1024 * 1024
# A throttled invoke is retried by the mapping after a backoff; this is its first step.
THROTTLE_RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class Mapping:
    """The stage's mapping and function, reduced to what capacity depends on."""

    mode: str  # "standard" or "provisioned"
    batch_size: int
    window_seconds: float
    initial_readers: int
    scale_up_per_second: float
    mapping_cap: int  # concurrent batches the mapping may run
    function_cap: int  # concurrent executions the function may have (reserved, or the account's pool)
    function_cap_source: str  # "reserved concurrency" or "account concurrency"
    timeout_seconds: float
    time_reserve_seconds: float
    visibility_seconds: float
    max_receive_count: int
    retry_base_seconds: float
    retry_cap_seconds: float
    memory_mb: int
    fifo: bool
    max_message_bytes: int
    retention_seconds: float = 4 * 86_400
    account_concurrency: int = ACCOUNT_DEFAULT_CONCURRENCY
    reserved_concurrency: int | None = None
    max_pollers: int | None = None  # provisioned mode
    # Messages a second the mapping can take whatever its concurrency (received, retries included):
    # the pollers' bytes a second, or the downstream's rate limit. Set by ``for_workload``.
    rate_cap: float = math.inf
    rate_cap_source: str = ""

    @classmethod
    def of(cls, stage: StackSettings, account_concurrency: int = ACCOUNT_DEFAULT_CONCURRENCY) -> Mapping:
        if stage.provisioned_pollers is not None:
            pollers = stage.provisioned_pollers
            mode = "provisioned"
            cap = min(pollers.maximum * PROVISIONED_INVOKES_PER_POLLER, PROVISIONED_MAX_CONCURRENCY)
            initial = min(pollers.minimum * PROVISIONED_INVOKES_PER_POLLER, cap)
            per_minute = PROVISIONED_SCALE_UP_PER_MINUTE
        else:
            mode = "standard"
            cap = min(stage.max_concurrency, STANDARD_MAX_BATCHES)
            initial = min(STANDARD_INITIAL_BATCHES, cap)
            per_minute = STANDARD_SCALE_UP_PER_MINUTE
        # Unreserved, the function shares the account's pool with every other function of the region.
        function_cap = stage.reserved_concurrency if stage.reserved_concurrency is not None else account_concurrency
        return cls(
            mode=mode,
            batch_size=stage.batch_size,
            window_seconds=float(stage.max_batching_window_seconds),
            initial_readers=initial,
            scale_up_per_second=per_minute / 60,
            mapping_cap=cap,
            function_cap=function_cap,
            function_cap_source="reserved concurrency" if stage.reserved_concurrency else "account concurrency",
            timeout_seconds=float(stage.function_timeout_seconds),
            time_reserve_seconds=float(stage.time_reserve_seconds),
            visibility_seconds=float(stage.visibility_timeout_seconds),
            max_receive_count=stage.max_receive_count,
            retry_base_seconds=stage.retry_backoff_base_seconds,
            retry_cap_seconds=stage.retry_backoff_cap_seconds,
            memory_mb=stage.function_memory_mb,
            fifo=stage.fifo,
            max_message_bytes=stage.max_message_size_bytes,
            retention_seconds=float(stage.retention_period_seconds),
            account_concurrency=account_concurrency,
            reserved_concurrency=stage.reserved_concurrency,
            max_pollers=stage.provisioned_pollers.maximum if stage.provisioned_pollers is not None else None,
        )

    def for_workload(self, workload: Workload) -> Mapping:
        """The limits the workload adds. FIFO: Lambda processes at most one batch per message group at
        a time, so the active groups bound the concurrency (the order within a group is not modelled
        further). Provisioned pollers each read at most 1 MB a second, and a downstream's rate limit
        holds every instance to its calls a second: both bound the messages a second, not the batches."""
        mapping = self
        if self.fifo and workload.message_groups is not None:
            groups = workload.message_groups
            mapping = dataclasses.replace(
                mapping, mapping_cap=min(self.mapping_cap, groups), initial_readers=min(self.initial_readers, groups)
            )
        caps = []
        if self.max_pollers is not None:
            per_message = sqs_message_bytes(self.max_message_bytes, workload)
            caps.append((self.max_pollers * PROVISIONED_BYTES_PER_POLLER / per_message,
                         f"{self.max_pollers:,} pollers x 1 MB/s"))  # fmt: skip
        if workload.rate_limit_per_second is not None:
            caps.append((workload.rate_limit_per_second, f"rate limit {workload.rate_limit_per_second:g}/s"))
        if caps:
            rate_cap, source = min(caps)
            mapping = dataclasses.replace(mapping, rate_cap=rate_cap, rate_cap_source=source)
        return mapping

    def reader_cap(self, per_reader: float) -> float:
        """Batches that can run at once, as a fluid: the concurrency limit, or fewer where the rate cap
        lets ``per_reader`` messages a second each through fewer readers."""
        return min(float(self.cap), self.rate_cap / per_reader if per_reader > 0 else math.inf)

    @property
    def cap(self) -> int:
        """Batches that can run at once: the lower of the mapping's and the function's limits."""
        return min(self.mapping_cap, self.function_cap)

    @property
    def time_budget_seconds(self) -> float:
        """No record starts once less than the reserve remains before the timeout."""
        return self.timeout_seconds - self.time_reserve_seconds

    def retry_delay_seconds(self, receives: int) -> float:
        """When a failed record returns: the backoff of its receive, or the visibility timeout without one."""
        if self.retry_base_seconds <= 0:
            return self.visibility_seconds
        return min(self.retry_cap_seconds, self.retry_base_seconds * 2.0 ** (receives - 1))


def offloaded(max_message_bytes: int, workload: Workload) -> bool:
    """A payload larger than the queue's maximum message size goes to S3, a pointer in the body."""
    return workload.payload_bytes > max_message_bytes


def sqs_message_bytes(max_message_bytes: int, workload: Workload) -> int:
    """What SQS holds and a poller reads of one message: its body, or the pointer to an offloaded payload."""
    return POINTER_BODY_BYTES if offloaded(max_message_bytes, workload) else workload.payload_bytes


def pollers_needed(receives_per_second: float, readers: float, message_bytes: int) -> float:
    """Provisioned pollers a load needs: 10 concurrent invokes and 1 MB a second each, whichever binds."""
    by_invokes = readers / PROVISIONED_INVOKES_PER_POLLER
    by_bytes = receives_per_second * message_bytes / PROVISIONED_BYTES_PER_POLLER
    return max(by_invokes, by_bytes)


def record_bytes(max_message_bytes: int, workload: Workload) -> int:
    """One record of the invocation's event: its body (or pointer) and Lambda's envelope."""
    return sqs_message_bytes(max_message_bytes, workload) + RECORD_ENVELOPE_BYTES


def full_batch(mapping: Mapping, workload: Workload) -> int:
    """The largest batch: the batch size, or fewer records when their bodies reach 6 MB."""
    by_payload = INVOCATION_PAYLOAD_LIMIT_BYTES // record_bytes(mapping.max_message_bytes, workload)
    return max(1, min(mapping.batch_size, by_payload))


def memory_needed_mb(max_message_bytes: int, workload: Workload, batch_size: int) -> float:
    """About what a batch needs: the base, the event (at most 6 MB) and the offloaded payloads fetched."""
    event = min(batch_size * record_bytes(max_message_bytes, workload), INVOCATION_PAYLOAD_LIMIT_BYTES)
    fetched = batch_size * workload.payload_bytes if offloaded(max_message_bytes, workload) else 0
    return BASE_MEMORY_MB + PAYLOAD_MEMORY_FACTOR * (event + fetched) / MB


def receives_per_batch(records: float) -> int:
    return max(1, math.ceil(records / MESSAGES_PER_RECEIVE))


def attempts_per_message(mapping: Mapping, workload: Workload) -> float:
    """Receives a message takes on average: a failing one comes back until ``maxReceiveCount``."""
    f, m = workload.failure_rate, mapping.max_receive_count
    retried = (1 - f**m) / (1 - f) if f else 1.0
    return workload.poison_rate + (1 - workload.poison_rate) * retried


def batch_duration_ms(mapping: Mapping, workload: Workload, records: float) -> float:
    """Expected duration of one invocation of ``records`` records (not started past the time budget)."""
    handler = workload.handler
    parallel = min(workload.records_in_parallel, max(1, math.ceil(records)))
    if parallel <= 1:
        work = records * handler.mean_ms
    else:
        # A pool of ``parallel`` workers: the total work spread over them, or the longest record.
        work = max(records * handler.mean_ms / parallel, handler.expected_max_ms(parallel))
    return min(work + workload.invocation_overhead_ms, mapping.time_budget_seconds * 1000)


def light_batch(mapping: Mapping, workload: Workload, rate: float) -> tuple[float, float]:
    """Records per batch and the wait of a batch's first record for it to close, with no backlog.

    Without a window a receive returns what arrived during its round trip. With one, every idle
    reader gathers its own batch (Lambda's pollers each fill their own), so the arrivals split
    between the readers not busy with a batch: a fixed point of batch size and busy readers.
    """
    full = full_batch(mapping, workload)
    if rate <= 0:
        return 1.0, mapping.window_seconds
    if mapping.window_seconds <= 0:
        return min(full, 1 + rate * workload.receive_ms / 1000), 0.0
    records = 1.0
    for _ in range(50):
        busy = rate / records * (batch_duration_ms(mapping, workload, records) / 1000 + workload.receive_ms / 1000)
        gathering = max(1.0, mapping.initial_readers - busy)
        records = min(full, 1 + rate * mapping.window_seconds / gathering)
    return records, min(mapping.window_seconds, (records - 1) * gathering / rate)


def saturated_reader(mapping: Mapping, workload: Workload) -> tuple[int, float]:
    """Records per batch and seconds per batch of one reader that always finds messages waiting."""
    records = full_batch(mapping, workload)
    return records, reader_cycle_seconds(mapping, workload, records)


def reader_cycle_seconds(mapping: Mapping, workload: Workload, records: float) -> float:
    """One reader's time per batch: its receives, the invocation, and the round trip that settles it."""
    round_trips = receives_per_batch(records) + 1
    return round_trips * workload.receive_ms / 1000 + batch_duration_ms(mapping, workload, records) / 1000
