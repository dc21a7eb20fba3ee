"""`make bench` judges each target and writes its tables outside docs/; `make bench-docs` writes docs/."""

from __future__ import annotations

import pytest

import benchmarks.__main__ as bench
from benchmarks import exactly_once, lambda_runtime, parse_cost, rate_limit, report
from benchmarks import publisher as publisher_bench
from benchmarks.lambda_runtime import ColdStart, PerRecord

CASES = [(1.45, "<= 1.5", "met"), (1.5, "<= 1.5", "met"), (1.51, "<= 1.5", "missed"), (2.0, ">= 3", "missed"),
         (0.3, "report", "reported"), (17.99, "18-22", "missed"), (18.0, "18-22", "met"), (22.0, "18-22", "met"),
         (22.01, "18-22", "missed")]  # fmt: skip


@pytest.mark.parametrize(("value", "target", "expected"), CASES)
def test_verdict_of_a_figure_against_its_target(value, target, expected):
    assert report.verdict(value, target) == expected


@pytest.fixture
def figures(monkeypatch, tmp_path):
    """The benchmarks' measurements replaced by fixed figures; docs/ and .cache/bench/ by folders of tmp_path."""
    cold = {"ms": ColdStart(ours_ms=150.0, naive_ms=300.0)}  # ratio 0.5: met
    per_record = [PerRecord(10, 3.0, 2.0), PerRecord(100, 2.0, 1.5), PerRecord(10_000, 2.0, 1.5)]
    monkeypatch.setattr(lambda_runtime, "measure", lambda repeats, sizes: (cold["ms"], per_record, ["put"]))
    monkeypatch.setattr(bench, "concurrency", lambda repeats: (55.0, 500.0))
    monkeypatch.setattr(bench, "peak_rss", lambda size, ours: (80.0, 10.0))
    rows = [exactly_once.Row(10, "sync", 80.0, 5.0, 2, 25.0), exactly_once.Row(100, "async", 150.0, 20.0, 4, 25.0)]
    monkeypatch.setattr(exactly_once, "run", lambda latency_ms, repeats: rows)
    ours = publisher_bench.Run(5_000, 5_000, 1.0, 60.0, 55.0)
    plain = publisher_bench.Run(5_000, 5_000, 15.0, 55.0, 55.0)
    published = publisher_bench.Figures(ours, plain, 25.0, 16, offloaded=10, objects=10, missing=0)
    monkeypatch.setattr(publisher_bench, "run", lambda quick: published)
    monkeypatch.setattr(bench, "return_cost", lambda repeats, size=10_000: 10.0)  # of 30 us kept: met
    multipliers = [parse_cost.Multiplier(shape, way, 1_048_576, 20 * 1_048_576)
                   for shape in parse_cost.SHAPES for way in parse_cost.WAYS]  # fmt: skip
    batch = parse_cost.BatchPeak(256, 2 * 1_048_576, 200.0, 10, ["msg-11"], 0, "CPython 3.14")
    monkeypatch.setattr(parse_cost, "run", lambda quick: parse_cost.Figures(multipliers, batch))
    monkeypatch.setattr(rate_limit, "measure", lambda seconds: rate_figures(calls=1_220, exactly_once=300))
    docs, output = tmp_path / "docs", tmp_path / "cache"
    docs.mkdir()
    monkeypatch.setattr(report, "DOCUMENT", docs / "performance.md")
    monkeypatch.setattr(report, "OUTPUT", output)
    monkeypatch.setattr(bench, "ROOT", tmp_path)
    return cold, docs, output


def test_bench_meeting_every_target_exits_0_and_leaves_docs_alone(figures, capsys):
    _, docs, output = figures

    assert bench.main([]) == 0

    out = capsys.readouterr().out
    assert "Every target met." in out
    assert sorted(path.name for path in output.iterdir()) == ["cost.md", "performance.md", "results.json"]
    assert list(docs.iterdir()) == []
    assert "| <= 0.5 | met |" in (output / "performance.md").read_text()


def test_bench_missing_a_target_says_which_and_exits_1(figures, capsys):
    cold, _, _ = figures
    cold["ms"] = ColdStart(ours_ms=240.0, naive_ms=300.0)  # ratio 0.8, target <= 0.5

    assert bench.main([]) == 1

    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("cold start: import + first batch of 10"))
    assert "0.80  <= 0.5  missed   240 ms vs 300 ms" in line
    assert "1 target(s) missed: cold start: import + first batch of 10" in out


def test_bench_docs_writes_the_tables_to_docs(figures):
    _, docs, _ = figures

    assert bench.main(["--docs"]) == 0

    assert sorted(path.name for path in docs.iterdir()) == ["cost.md", "performance.md"]


def test_bench_quick_and_docs_do_not_go_together(capsys):
    with pytest.raises(SystemExit) as exited:
        bench.main(["--quick", "--docs"])
    assert exited.value.code == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize(("ours_s", "plain_s", "outcomes"), [(1.0, 15.0, ["met", "met", "met"]),
                                                             (2.0, 20.0, ["missed", "met", "met"]),
                                                             (1.25, 5.0, ["met", "missed", "met"])])  # fmt: skip
def test_publisher_verdicts_need_3000_messages_a_second_and_8x_the_plain_loop(ours_s, plain_s, outcomes):
    # 5,000 events each: 1 s is 5,000 msg/s
    ours = publisher_bench.Run(5_000, 5_000, ours_s, 60.0, 55.0)
    plain = publisher_bench.Run(5_000, 5_000, plain_s, 55.0, 55.0)
    figures = publisher_bench.Figures(ours, plain, 25.0, 16, offloaded=10, objects=10, missing=0)
    assert [item.outcome for item in publisher_bench.verdicts(figures)] == outcomes


def test_publisher_verdict_counts_an_offloaded_event_missing():
    run = publisher_bench.Run(5_000, 5_000, 1.0, 60.0, 55.0)
    figures = publisher_bench.Figures(run, run, 25.0, 16, offloaded=10, objects=9, missing=1)
    assert publisher_bench.verdicts(figures)[-1].outcome == "missed"


def rate_figures(calls: int, exactly_once: int, duplicates: int = 0) -> rate_limit.Figures:
    """A minute at 20/s (burst 20) in which the stand-in received ``calls`` POSTs, one every 1/20 s from 0.5 s,
    and the instances made ``exactly_once`` calls for claims, completions and breaker reads (a third of them
    reads), and 200 for tokens."""
    arrivals = [0.5 + n / 20 for n in range(calls)]
    calls_by_kind = {
        "idempotency": exactly_once - exactly_once // 3,
        "breakers": exactly_once // 3,
        "tokens": 200,
        "round trips": exactly_once,
    }
    return rate_limit.Figures(rate=20.0, burst=20, instances=4, seconds=60.0, calls=calls, arrivals=arrivals,
                              duplicates=duplicates, records=calls, listed=0, shares=[calls], store_calls=calls_by_kind,
                              python="CPython 3.14")  # fmt: skip


@pytest.mark.parametrize(("calls", "exactly_once", "duplicates", "outcomes"), [
    (1_220, 300, 0, ["met", "met"]),  # (1,220 - 20) / 60 = 20/s
    (1_100, 300, 0, ["met", "met"]),  # 18.0/s: the rate's 90 %, within
    (1_075, 300, 0, ["missed", "met"]),  # 17.58/s: under it
    (1_360, 300, 0, ["missed", "met"]),  # 22.33/s: over its 110 %
    (1_220, 500, 1, ["met", "missed"]),  # an event posted twice
])  # fmt: skip
def test_rate_limit_verdicts_need_the_rate_within_10_percent_and_each_event_once_and_show_store_calls(
    calls, exactly_once, duplicates, outcomes
):
    figures = rate_figures(calls, exactly_once, duplicates)
    judged = rate_limit.verdicts(figures)
    assert [item.outcome for item in judged] == [*outcomes, "reported", "reported"]
    assert judged[2].value == pytest.approx(10 * exactly_once / (calls - duplicates))  # shown, never judged
