"""Memory is a bound: a batch of the largest payloads the dev stage allows, plus a poison one, through the
Lambda handler in a fresh process (CPython 3.14 where it can be had), with moto's S3, SQS and DynamoDB."""

from __future__ import annotations

from benchmarks.parse_cost import BATCH, batch_peak, dev_bound


def test_a_batch_of_payloads_at_the_bound_and_a_poison_one_is_disposed_within_the_functions_memory():
    memory_mb, bound = dev_bound()
    # WHEN 10 documents with line items at the bound and one JSON array at the bound are handled
    peak = batch_peak()
    # THEN the process never held more than the function's memory, and every record has its disposition:
    # the documents succeeded, the poison was quarantined at once, nothing failed the batch or was listed
    assert peak.payload_bytes == bound
    assert peak.peak_mb < memory_mb, f"peak RSS {peak.peak_mb:.0f} MB over the function's {memory_mb} MB"
    assert (peak.succeeded, peak.quarantined, peak.listed) == (BATCH, ["invalid_envelope"], 0)
