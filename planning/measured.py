"""Handler times read back from what the function logged: its EMF metrics documents."""

from __future__ import annotations

import json
from pathlib import Path

from planning.workload import WorkloadError


def handler_times_from_logs(folder: Path) -> list[float]:
    """Per-record handler times (ms) from the EMF documents in ``folder``'s ``*.log`` files.

    Each document is one batch and event type: ``ProcessingTime`` holds each record's time, or, past
    EMF's 100 values an array, as many evenly spaced order statistics of them, each then counted for
    its share of the records it covers (``RecordsProcessed`` + ``RecordsFailed``, and the rest timed).
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
                times = [float(value) for value in document["ProcessingTime"]]
                records = int(sum(document.get(name, [0])[0] for name in ("RecordsProcessed", "RecordsFailed")))
            except (ValueError, KeyError, IndexError, TypeError):
                continue  # not an EMF document of the consumer
            samples.extend(_weighted(times, records))
    if not samples:
        raise WorkloadError(f"no ProcessingTime metrics in {folder}/*.log: run `make local` or `make chaos` first")
    return samples


def _weighted(times: list[float], records: int) -> list[float]:
    """The times a document stands for: each once, or, when it summed up more records than it holds,
    each repeated for its equal share of them."""
    if not times or records <= len(times):
        return times
    share = records / len(times)
    return [time for index, time in enumerate(times) for _ in range(round((index + 1) * share) - round(index * share))]
