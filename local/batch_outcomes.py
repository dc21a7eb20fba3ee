"""What each record of a settled batch came to, for the serve mode's one line per batch.

The mapping knows only what was deleted and what was listed. A deleted record may have
succeeded, been acknowledged as a duplicate, or been quarantined to the DLQ: only the
function knows, and it says so in its structured log (one WARNING per quarantined record
with its `kind`, one INFO per duplicate). Those lines are read from the invocation's slice
of its instance's log, so a quarantine is never shown as a success.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from local.event_source import BatchResult

QUARANTINED_LINE = "Record quarantined to the DLQ"
DUPLICATE_LINE = "Duplicate acknowledged"
# A batch's line names this many of its trace ids, and counts the rest.
SHOWN_TRACE_IDS = 3


@dataclass
class BatchOutcomes:
    records: int
    succeeded: int = 0
    duplicates: int = 0
    listed: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)  # kind -> records
    reason: str = "ok"
    # The trace ids its records carried (AWSTraceHeader): the ids to follow them by (make logs TRACE_ID=...).
    trace_ids: tuple[str, ...] = ()

    def describe(self, duration_ms: float) -> str:
        if self.reason in ("function_error", "invalid_response"):
            why = "function error" if self.reason == "function_error" else "invalid response"
            return (f"batch of {self.records}: {why}: nothing deleted, all {self.records} return after the "
                    f"visibility timeout ({duration_ms:.0f} ms)" + self._traces())  # fmt: skip
        quarantined = sum(self.quarantined.values())
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.quarantined.items()))
        return (
            f"batch of {self.records}: {self.succeeded} succeeded, {self.duplicates} duplicate, "
            f"{self.listed} listed for retry, {quarantined} quarantined" + (f" ({kinds})" if kinds else "")
            + f" in {duration_ms:.0f} ms" + self._traces()
        )  # fmt: skip

    def _traces(self) -> str:
        shown = ", ".join(self.trace_ids[:SHOWN_TRACE_IDS])
        more = len(self.trace_ids) - SHOWN_TRACE_IDS
        return f"; trace {shown}" + (f" (+{more})" if more > 0 else "") if self.trace_ids else ""


def _records(lines: list[str]) -> list[dict[str, Any]]:
    parsed = []
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            parsed.append(record)
    return parsed


def batch_outcomes(result: BatchResult) -> BatchOutcomes:
    """Split the batch's deleted records into succeeded, duplicate and quarantined (by kind)."""
    outcomes = BatchOutcomes(records=len(result.message_ids), listed=len(result.failed), reason=result.reason,
                             trace_ids=result.log.trace_ids if result.log else ())  # fmt: skip
    if result.reason in ("function_error", "invalid_response"):
        return outcomes
    deleted = set(result.deleted)
    quarantined: dict[str, str] = {}
    duplicates: set[str] = set()
    for record in _records(result.log.lines() if result.log else []):
        message_id = record.get("message_id")
        if message_id not in deleted:
            continue
        text = str(record.get("message", ""))
        if text.startswith(QUARANTINED_LINE):
            quarantined[message_id] = str(record.get("kind") or "unknown")
        elif text.startswith(DUPLICATE_LINE):
            duplicates.add(message_id)
    outcomes.quarantined = Counter(quarantined.values())
    outcomes.duplicates = len(duplicates - set(quarantined))
    outcomes.succeeded = len(deleted) - len(quarantined) - outcomes.duplicates
    return outcomes
