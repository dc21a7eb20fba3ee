"""Handler times read back from what the function logged: its EMF metrics documents."""

from __future__ import annotations

import json
from pathlib import Path

from planning.workload import WorkloadError


def handler_times_from_logs(folder: Path) -> list[float]:
    """Per-record handler times (ms) from the EMF documents in ``folder``'s ``*.log`` files.

    Each document is one batch and event type: ``ProcessingTime`` is its mean per record, counted
    once per record it covers (``RecordsProcessed`` + ``RecordsFailed``). Means of batches hide some
    of the spread within a batch: the p99 they give is a floor.
    """
    if not folder.is_dir():
        raise WorkloadError(f"{folder} is not a folder of function logs (for example .cache/local)")
    samples: list[float] = []
    for path in sorted(folder.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if '"ProcessingTime"' not in line:
                continue
            try:
                document = json.loads(line)
                mean_ms = float(document["ProcessingTime"][0])
                records = int(sum(document.get(name, [0])[0] for name in ("RecordsProcessed", "RecordsFailed")))
            except (ValueError, KeyError, IndexError, TypeError):
                continue  # not an EMF document of the consumer
            samples.extend([mean_ms] * records)
    if not samples:
        raise WorkloadError(f"no ProcessingTime metrics in {folder}/*.log: run `make local` or `make chaos` first")
    return samples
