"""The rate-limit benchmark's machinery (benchmarks/rate_limit.py), run for a few seconds at a small rate: the
calls it counts at the stand-in are the calls the instances made, and never more than the tokens allowed."""

from __future__ import annotations

import sys

from benchmarks import rate_limit


def test_the_rate_limit_benchmark_counts_each_call_the_instances_made_within_the_tokens(tmp_path):
    # GIVEN 2 instances (processes) at a limit of 5/s on the orders API (burst 5), measured for 2 s
    python: tuple[list[str], list[str], str] = ([sys.executable], [], "this interpreter")

    # WHEN the benchmark runs them against moto's server and the stand-in orders API
    figures = rate_limit.measure(rate=5.0, instances=2, seconds=2.0, python=python, log_dir=tmp_path)

    # THEN every record the instances did not list reached the stand-in once, and no record more
    posts = len(figures.arrivals)
    print(rate_limit.render(figures))
    assert figures.records > 0 and posts > 0, (tmp_path / "instance-0.log").read_text()[-2_000:]
    assert figures.duplicates == 0
    assert posts == figures.records - figures.listed == sum(figures.shares)
    # AND the window counts the calls of its 2 s, within the bucket's tokens since the instances began
    assert 0 < figures.calls <= posts
    assert figures.arrivals == sorted(figures.arrivals) and figures.arrivals[0] > 0
    assert posts <= figures.token_bound == figures.burst + 5.0 * figures.arrivals[-1]
    assert figures.burst == 5 and figures.store_calls["idempotency"] > 0 and figures.store_calls["tokens"] > 0
