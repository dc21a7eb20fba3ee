"""The rate-limit benchmark's arguments and its section of docs/performance.md (benchmarks/rate_limit.py)."""

from __future__ import annotations

import pytest

from benchmarks import rate_limit


def figures(calls: int = 1_220) -> rate_limit.Figures:
    return rate_limit.Figures(rate=20.0, burst=20, instances=4, seconds=60.0, calls=calls,
                              arrivals=[0.5 + n / 20 for n in range(calls)], duplicates=0, records=calls, listed=0,
                              shares=[calls // 4] * 4, store_calls={"idempotency": 300, "tokens": 130},
                              python="CPython 3.14")  # fmt: skip


def test_the_rate_is_the_window_s_calls_less_the_burst_and_each_slice_its_own():
    # GIVEN a call every 1/20 s from 0.5 s after the instances started, 1,200 of them in the window's 60 s
    measured = figures(calls=1_200)

    # THEN the rate leaves the burst out: (1,200 - 20) / 60; each 10 s slice saw its 200 calls
    assert measured.per_second == pytest.approx(1_180 / 60)
    assert measured.slices == pytest.approx([20.0] * 6)
    # AND the tokens allow the burst, then 20 a second from the start to the last call
    assert measured.token_bound == pytest.approx(20 + 20 * (0.5 + 1_199 / 20))


def test_the_section_replaces_its_own_in_performance_md_and_keeps_the_others(tmp_path):
    # GIVEN a performance.md with the section between two others
    document = tmp_path / "performance.md"
    document.write_text(
        f"# Performance\n\n## Before\n\nkept\n\n{rate_limit.SECTION}\n\nold figures\n\n## After\n\nkept too\n"
    )

    # WHEN a run writes its section
    rate_limit.write_section(figures(), document)

    # THEN the old one is gone, the others are kept, and the new one holds this run's figure once
    text = document.read_text()
    assert "old figures" not in text and text.count(rate_limit.SECTION) == 1
    assert "## Before\n\nkept" in text and "## After\n\nkept too" in text
    assert "| calls/s the orders API saw | 20.00 | 18-22 | met |" in text


@pytest.mark.parametrize("arguments", [["--seconds", "nan"], ["--rate", "0"], ["--instances", "0"],
                                       ["--seconds", "inf"], ["--docs", "--seconds", "5"]])  # fmt: skip
def test_a_bad_argument_prints_usage_and_exits_2(arguments, capsys):
    with pytest.raises(SystemExit) as exited:
        rate_limit.main(arguments)
    assert exited.value.code == 2
    assert "usage:" in capsys.readouterr().err
