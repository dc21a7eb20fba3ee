"""`sqs-plan`: a stage and a workload in, concurrency, scaling, checks, cost and suggestions out."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from infra.settings import StackSettings, StackSettingsError
from operations.cli import ArgumentParser, command
from planning.checks import Check, outage_retention, run_checks
from planning.cost import CostLine, monthly_cost, total
from planning.measured import handler_times_from_logs
from planning.model import ACCOUNT_DEFAULT_CONCURRENCY, Mapping
from planning.outage import OutagePlan, OutageSide, outage
from planning.planner import Plan, SteadyState, plan
from planning.prices import PriceSheet, UnpricedRegionError, price_sheet
from planning.simulation import SimulationResult, simulate
from planning.suggest import suggest
from planning.workload import ArrivalProfile, Burst, HandlerTime, Workload, WorkloadError

ROOT = Path(__file__).resolve().parents[1]
# Exit codes: planned and every check passes; planned with a FAIL row; a bad argument or input.
OK, CHECK_FAILED, USAGE = 0, 1, 2
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


def duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``5m``, ``2h`` or ``1d``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (for example 60s, 5m, 2h)")
    return float(match[1]) * _UNITS[match[2]]


def burst(text: str) -> Burst:
    """``N`` or ``N@TIME``: N messages sent at once, at TIME (default 0)."""
    count, _, at = text.partition("@")
    try:
        messages = int(count.replace(",", "").replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a burst (N or N@TIME, for example 2000000@10m)") from None
    return Burst(duration(at) if at else 0.0, messages)


def positive(text: str) -> float:
    """A finite number >= 0 (``nan`` and ``inf`` are refused: no plan can use them)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def count(text: str) -> int:
    """A whole number >= 1."""
    try:
        value = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def rate_limit(text: str) -> float:
    """Calls a second the downstream takes, > 0."""
    value = positive(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0 calls a second")
    return value


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="sqs-plan",
        description="Plan a stage for a workload: concurrency, scale-up, bursts, checks, monthly cost, suggestions.",
    )
    _workload_arguments(p)
    _account_arguments(p)
    _downstream_arguments(p)
    _output_arguments(p)
    return p


def _workload_arguments(p: ArgumentParser) -> None:
    """The stage and what arrives: rates, bursts, handler times, the mix of outcomes."""
    stage = p.add_mutually_exclusive_group()
    stage.add_argument("--stage", default="dev", help="a stage of cdk.json's context.stages (default dev)")
    stage.add_argument("--stage-file", type=Path, help="a JSON file of stage settings instead")
    rate = p.add_mutually_exclusive_group(required=True)
    rate.add_argument("--rate", type=positive, help="steady arrival rate, messages a second")
    rate.add_argument("--per-day", type=positive, help="steady arrival rate, messages a day")
    rate.add_argument("--csv", type=Path, help="messages per minute, one row a minute (last column)")
    p.add_argument("--burst", type=burst, action="append", default=[], help="N@TIME: N messages at once (repeatable)")
    handler = p.add_mutually_exclusive_group(required=True)
    handler.add_argument("--handler-ms", type=positive, help="handler time per record, p50 in ms")
    handler.add_argument("--handler-times", type=Path, help="measured handler times, ms, one a line")
    handler.add_argument(
        "--handler-times-from-logs",
        type=Path,
        metavar="DIR",
        help="the function's EMF ProcessingTime in DIR/*.log (e.g. .cache/local after make local)",
    )
    p.add_argument("--handler-p99-ms", type=positive, help="handler p99 in ms (default: the p50)")
    p.add_argument(
        "--records-in-parallel",
        type=int,
        default=1,
        help="records of a batch run side by side (async handlers: the stage's max_concurrent_records; default 1)",
    )
    p.add_argument("--message-groups", type=int, help="FIFO: message groups with messages waiting")
    p.add_argument("--payload-bytes", type=int, default=1_024)
    p.add_argument("--failure-rate", type=positive, default=0.0, help="share of receives whose handler raises")
    p.add_argument("--poison-rate", type=positive, default=0.0, help="share of messages quarantined at once")
    p.add_argument("--duplicate-rate", type=positive, default=0.0, help="share of messages already processed")
    p.add_argument("--receive-ms", type=positive, default=20.0, help="the mapping's receive round trip (20)")
    p.add_argument(
        "--invocation-overhead-ms", type=positive, default=0.0, help="billed time per batch beyond its records"
    )


def _account_arguments(p: ArgumentParser) -> None:
    """Where it runs: the region's prices and the account's concurrency."""
    p.add_argument("--region", default="us-east-1", help="prices of this region (planning/prices.toml)")
    p.add_argument(
        "--account-concurrency",
        type=count,
        default=ACCOUNT_DEFAULT_CONCURRENCY,
        help=f"the region's concurrent executions for the account (default {ACCOUNT_DEFAULT_CONCURRENCY:,})",
    )


def _downstream_arguments(p: ArgumentParser) -> None:
    """The service the handlers call: its rate limit, an outage, the breaker's probes."""
    p.add_argument(
        "--rate-limit",
        type=rate_limit,
        metavar="PER_SECOND",
        help="the downstream's rate limit, calls a second across every instance: a bound on throughput",
    )
    p.add_argument(
        "--outage",
        type=duration,
        help="the downstream is down this long (e.g. 10m): backlog, DLQ and drain with and without the breaker",
    )
    p.add_argument(
        "--probe-every",
        type=duration,
        help="the breaker's longest cool-down between probes (default: the stage's breaker_cool_down_cap_seconds)",
    )


def _output_arguments(p: ArgumentParser) -> None:
    """What is checked and printed: the latency target, billing, the simulation, JSON."""
    p.add_argument(
        "--max-age",
        type=duration,
        help="latency target for the oldest message (e.g. 60s): checks and suggested settings",
    )
    p.add_argument("--full-batches", action="store_true", help="bill every batch as full, as docs/cost.md does")
    p.add_argument("--simulate", action="store_true", help="also run the simulation and chart depth and age")
    p.add_argument("--horizon", type=duration, help="simulated time of arrivals (default 10m, or past the bursts)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")


def load_stage(args: argparse.Namespace) -> StackSettings:
    if args.stage_file is not None:
        try:
            values = json.loads(args.stage_file.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise StackSettingsError(f"cannot read stage file {args.stage_file}: {error}") from None
        return StackSettings.for_stage(args.stage_file.stem, {args.stage_file.stem: values})
    cdk_json = ROOT / "cdk.json"
    try:
        stages = json.loads(cdk_json.read_text())["context"].get("stages")
    except (OSError, ValueError, KeyError, AttributeError) as error:
        raise StackSettingsError(f"cannot read context.stages from {cdk_json}: {error}") from None
    return StackSettings.for_stage(args.stage, stages)


def load_workload(args: argparse.Namespace) -> Workload:
    bursts = tuple(args.burst)
    if args.csv is not None:
        arrivals = ArrivalProfile.from_csv(args.csv, bursts)
    else:
        arrivals = ArrivalProfile(args.rate if args.rate is not None else args.per_day / 86_400, bursts=bursts)
    if args.handler_times is not None:
        try:
            samples = [float(line) for line in args.handler_times.read_text().split() if line.strip()]
        except (OSError, ValueError) as error:
            raise WorkloadError(f"cannot read handler times from {args.handler_times}: {error}") from None
        handler = HandlerTime.measured(samples)
    elif args.handler_times_from_logs is not None:
        handler = HandlerTime.measured(handler_times_from_logs(args.handler_times_from_logs))
    else:
        handler = HandlerTime(args.handler_ms, args.handler_p99_ms or args.handler_ms)
    return Workload(
        arrivals=arrivals,
        handler=handler,
        payload_bytes=args.payload_bytes,
        failure_rate=args.failure_rate,
        poison_rate=args.poison_rate,
        duplicate_rate=args.duplicate_rate,
        records_in_parallel=args.records_in_parallel,
        message_groups=args.message_groups,
        receive_ms=args.receive_ms,
        invocation_overhead_ms=args.invocation_overhead_ms,
        rate_limit_per_second=args.rate_limit,
    )


def _seconds(value: float) -> str:
    if not math.isfinite(value):
        return "never"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7_200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def _count(value: float) -> str:
    return f"{value:,.0f}" if math.isfinite(value) else "no bound"


def _money(value: float | None) -> str:
    return "not priced" if value is None else f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def render(console: Console, result: dict[str, Any], p: Plan, stage_name: str, prices: PriceSheet) -> None:
    """The report's sections in order: the stage, capacity, scale-up, bursts, checks, cost, suggestion."""
    m = p.mapping
    console.print(
        f"[bold]Stage {stage_name}[/]: {m.mode} mapping, batch {m.batch_size}, window {m.window_seconds:g} s, "
        f"at most {m.mapping_cap} batches, function limit {m.function_cap}, timeout {m.timeout_seconds:g} s "
        f"(reserve {m.time_reserve_seconds:g} s), {m.memory_mb} MB, maxReceiveCount {m.max_receive_count}"
    )
    console.print(_capacity(p))
    r = p.ramp
    console.print(
        f"Scale-up from idle to {r.rate:,.1f} msg/s ({m.mode}: {m.initial_readers} batches, "
        f"+{m.scale_up_per_second * 60:,.0f} a minute, at most {m.cap}): needs {r.readers_needed:,.1f}; "
        f"reached after {_seconds(r.seconds_to_scale)}, backlog gone after {_seconds(r.seconds_to_drain)}, "
        f"peak backlog {_count(r.peak_backlog)}, oldest message {_seconds(r.peak_age_seconds)}."
    )
    if p.bursts:
        console.print(_bursts(p))
    console.print(_checks(result["checks"]))
    console.print(_cost(result["cost"], prices))
    suggestion = result.get("suggestion")
    if suggestion is not None:
        console.print(_suggestion(suggestion))


def _capacity(p: Plan) -> Table:
    table = Table(title="Capacity", title_justify="left")
    for column in ("", "mean rate", "peak rate"):
        table.add_column(column, justify="right" if column else "left")
    rows: tuple[tuple[str, Callable[[SteadyState], str]], ...] = (
        ("messages a second", lambda x: f"{x.rate:,.1f}"),
        ("records per batch", lambda x: f"{x.records_per_batch:,.1f}"),
        ("batch duration", lambda x: f"{x.batch_ms:,.0f} ms"),
        ("concurrent executions (Little's law)", lambda x: f"{x.concurrency:,.1f}"),
        ("concurrent batches incl. receives", lambda x: f"{x.readers:,.1f}"),
        ("allowed", lambda x: f"{x.limit:,} ({x.limited_by})"),
        ("headroom", lambda x: f"{x.headroom:,.1f}"),
        ("oldest message age", lambda x: _seconds(x.oldest_age_seconds)),
    )
    for label, getter in rows:
        table.add_row(label, getter(p.steady), getter(p.peak))
    if p.mapping.mode == "provisioned":
        table.add_row(
            "event pollers needed (10 invokes, 1 MB/s each)",
            *(f"{x.pollers_needed or 0:,.1f} of {p.mapping.max_pollers:,}" for x in (p.steady, p.peak)),
        )
    return table


def _outage(o: OutagePlan) -> Table:
    """The outage beside the breaker: what waits, what is lost to the DLQ, what the downstream sees."""
    low, high = o.without_breaker.dead_lettered_range
    table = Table(
        title=f"Outage of {_seconds(o.seconds)} at {o.rate:,.1f} msg/s ({o.sent:,.0f} sent; a failing message's "
        f"{o.receives} receives span {o.retry_span_seconds[0]:,.0f}-{o.retry_span_seconds[1]:,.0f} s; "
        f"a probe at least every {_seconds(o.probe_every_seconds)})",
        title_justify="left",
    )
    for column in ("", "without the breaker", "with the breaker"):
        table.add_column(column, justify="right" if column else "left")
    rows: tuple[tuple[str, Callable[[OutageSide], str]], ...] = (
        ("messages in the queue at its end", lambda x: _count(x.backlog_at_end)),
        ("messages moved to the DLQ", lambda x: _count(x.dead_lettered)),
        ("calls the downstream gets while down", lambda x: _count(x.calls_while_down)),
        ("back to normal after it ends", lambda x: _seconds(x.drain_seconds)),
        ("oldest message age", lambda x: _seconds(x.peak_age_seconds)),
    )
    for label, getter in rows:
        table.add_row(label, getter(o.without_breaker), getter(o.with_breaker))
    table.add_row("DLQ with the shortest/longest jitter", f"{_count(high)} / {_count(low)}", "0 / 0")
    return table


def _bursts(p: Plan) -> Table:
    bursts = Table(title="Bursts", title_justify="left")
    for column in ("at", "messages", "drained after", "peak age", "peak batches"):
        bursts.add_column(column, justify="right")
    for b in p.bursts:
        bursts.add_row(
            _seconds(b.at_seconds),
            f"{b.messages:,}",
            _seconds(b.seconds_to_drain),
            _seconds(b.peak_age_seconds),
            f"{b.peak_readers:,.0f}",
        )
    return bursts


def _checks(checks: list[dict[str, Any]]) -> Table:
    table = Table(title="Checks", title_justify="left")
    table.add_column("")
    table.add_column("check")
    table.add_column("detail")
    for c in checks:
        table.add_row("[green]ok[/]" if c["ok"] else "[red]FAIL[/]", c["name"], c["detail"])
    return table


def _cost(cost: dict[str, Any], prices: PriceSheet) -> Table:
    table = Table(
        title=f"Monthly cost, {prices.region_name} ({prices.region}), prices checked {prices.checked_on}",
        title_justify="left",
    )
    for column in ("service", "item", "quantity", "unit price", "month"):
        table.add_column(column, justify="right" if column in ("quantity", "unit price", "month") else "left")
    for line in cost["lines"]:
        table.add_row(
            line["service"],
            line["item"],
            f"{line['quantity']:,.2f}",
            "not priced" if line["unit_price"] is None else f"${line['unit_price']:.10g}",
            _money(line["monthly"]),
        )
    table.add_row("", "[bold]total (priced lines)[/]", "", "", f"[bold]{_money(cost['total'])}[/]")
    return table


def _suggestion(suggestion: dict[str, Any]) -> Table | str:
    """The settings that meet --max-age at the lowest cost, as a diff against the stage; or why there are none."""
    target = f"--max-age {suggestion['max_age_seconds']:g} s"
    if not suggestion["found"]:
        return f"[red]No setting the planner tries keeps up with this workload ({target}).[/]"
    month = f"{_money(suggestion['monthly'])} a month" + (" + pollers, not priced" if suggestion["pollers"] else "")
    title = (
        f"Suggested settings for {target} ({month})"
        if suggestion["meets"]
        else f"[red]No setting tried meets {target}[/]: the closest, oldest message "
        f"{_seconds(suggestion['worst_age_seconds'])} ({month})"
    )
    diff = Table(title=title, title_justify="left")
    for column in ("setting", "stage", "suggested"):
        diff.add_column(column)
    for name, before, after in suggestion["diff"]:
        diff.add_row(name, json.dumps(before), json.dumps(after))
    if not suggestion["diff"]:
        diff.add_row("(the stage is already the cheapest that meets it)", "", "")
    return diff


@command
def run(argv: Sequence[str] | None = None) -> int:
    """Exit 0 when every check passes, 1 when one fails (a FAIL row), 2 on a bad argument or input."""
    args = parser().parse_args(argv)
    try:
        stage = load_stage(args)
        workload = load_workload(args)
        prices = price_sheet(args.region)
    except (StackSettingsError, WorkloadError, UnpricedRegionError) as error:
        print(f"sqs-plan: error: {error}", file=sys.stderr)
        return USAGE
    mapping = Mapping.of(stage, args.account_concurrency).for_workload(workload)
    p = plan(mapping, workload)
    lines = monthly_cost(stage, mapping, workload, p.steady, prices, full_batches=args.full_batches)
    checks = run_checks(p, max_age_seconds=args.max_age, alarm_age_seconds=stage.oldest_message_age_alarm_seconds)
    # The breaker's cool-down doubles while probes fail, up to its cap: the longest wait for the next probe.
    probe_every = stage.breaker_cool_down_cap_seconds if args.probe_every is None else args.probe_every
    outage_plan = None if args.outage is None else outage(mapping, workload, args.outage, probe_every=probe_every)
    if outage_plan is not None:
        checks.append(outage_retention(outage_plan))
    result = _result(args, mapping, p, checks=checks, lines=lines, prices=prices)
    if outage_plan is not None:
        result["outage"] = asdict(outage_plan)
    if args.max_age is not None:
        result["suggestion"] = _suggestion_summary(stage, workload, prices, args)
    simulated = _simulated(args, mapping, workload, p)
    if simulated is not None:
        result["simulation"] = _simulation_summary(*simulated)
    code = OK if all(c.ok for c in checks) else CHECK_FAILED
    if args.json:
        print(json.dumps(_finite(result), indent=2))
        return code
    console = Console(highlight=False)
    render(console, result, p, result["stage"], prices)
    if outage_plan is not None:
        console.print(_outage(outage_plan))
    if simulated is not None:
        _chart(console, simulated[0], p)
    return code


def _result(
    args: argparse.Namespace,
    mapping: Mapping,
    p: Plan,
    *,
    checks: list[Check],
    lines: list[CostLine],
    prices: PriceSheet,
) -> dict[str, Any]:
    return {
        "stage": args.stage_file.stem if args.stage_file else args.stage,
        "mapping": asdict(mapping),
        "steady": asdict(p.steady),
        "peak": asdict(p.peak),
        "ramp": asdict(p.ramp),
        "bursts": [asdict(b) for b in p.bursts],
        "checks": [asdict(c) for c in checks],
        "cost": {
            "region": prices.region,
            "checked_on": prices.checked_on,
            "total": total(lines),
            "lines": [_line(line, prices) for line in lines],
        },
    }


def _suggestion_summary(
    stage: StackSettings, workload: Workload, prices: PriceSheet, args: argparse.Namespace
) -> dict[str, Any]:
    found = suggest(stage, workload, prices, max_age=args.max_age, account_concurrency=args.account_concurrency)
    return {
        "max_age_seconds": args.max_age,
        "found": found is not None,
        "meets": found is not None and found.meets,
        "pollers": found is not None and found.settings.provisioned_pollers is not None,
        "worst_age_seconds": found.worst_age_seconds if found else None,
        "diff": found.diff(stage) if found else [],
        "monthly": total(found.cost) if found else None,
    }


def _simulated(
    args: argparse.Namespace, mapping: Mapping, workload: Workload, p: Plan
) -> tuple[SimulationResult, float] | None:
    if not args.simulate:
        return None
    # Long enough for the last burst to drain as planned (at most a day), or the CSV's length.
    planned = max((b.at_seconds + b.seconds_to_drain for b in p.bursts if math.isfinite(b.seconds_to_drain)),
                  default=0.0)  # fmt: skip
    horizon = args.horizon or (len(workload.arrivals.per_minute) * 60 or min(86_400, max(600.0, 1.5 * planned)))
    return simulate(mapping, workload, horizon, seed=args.seed), horizon


def _finite(value: Any) -> Any:
    """JSON without NaN or Infinity: a quantity without bound (never drained, never keeps up) is null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _line(line: CostLine, prices: PriceSheet) -> dict[str, Any]:
    return {
        **asdict(line),
        "monthly": line.monthly,
        "unit": prices.unit(line.price_name),
        "source": prices.source(line.price_name),
    }


def _simulation_summary(r: SimulationResult, horizon: float) -> dict[str, Any]:
    return {
        "horizon_seconds": horizon,
        "drained_at_seconds": r.drained_at,
        "peak_age_seconds": r.peak_age,
        "peak_batches": r.peak_readers,
        "mean_concurrency_second_half": r.mean_concurrency(horizon / 2),
        "succeeded": r.succeeded,
        "quarantined": r.quarantined,
        "redriven_without_reason": r.redriven,
        "invocations": r.invocations,
        "throttled_invokes": r.throttled_invokes,
    }


def _chart(console: Console, r: SimulationResult, p: Plan) -> None:
    import plotext as plt  # noqa: PLC0415  # only --simulate draws

    times = [s.t / 60 for s in r.samples]
    plt.clear_figure()
    plt.theme("clear")
    plt.plot_size(min(console.width, 100), 18)
    plt.subplots(2, 1)
    plt.subplot(1, 1)
    plt.plot(times, [s.waiting + s.in_flight for s in r.samples], label="simulated queue depth")
    plt.title("Queue depth (messages) over minutes")
    plt.subplot(2, 1)
    plt.plot(times, [s.oldest_age for s in r.samples], label="simulated oldest age (s)")
    expected = max([p.ramp.peak_age_seconds, *(b.peak_age_seconds for b in p.bursts)])
    if math.isfinite(expected):
        plt.plot([times[0], times[-1]], [expected, expected], label="planner: peak age (s)")
    plt.title("Oldest message age (s) over minutes")
    chart = plt.build()
    print(chart if console.is_terminal else plt.uncolorize(chart))
    table = Table(title="Planner beside the simulation", title_justify="left")
    for column in ("", "planner", "simulation"):
        table.add_column(column, justify="right" if column else "left")
    table.add_row("peak oldest age", _seconds(expected), _seconds(r.peak_age))
    for b in p.bursts:
        # Drained: the queue back to about its steady depth (what the steady rate keeps in flight).
        steady_depth = 10 + 2 * p.workload.arrivals.rate_at(b.at_seconds) * p.steady.oldest_age_seconds
        back = next(
            (s.t for s in r.samples if s.t > b.at_seconds and s.waiting + s.in_flight <= steady_depth), math.inf
        )
        table.add_row(f"burst at {_seconds(b.at_seconds)} drained after", _seconds(b.seconds_to_drain),
                      _seconds(back - b.at_seconds))  # fmt: skip
    planned_batches = max([p.ramp.readers_needed, *(b.peak_readers for b in p.bursts)])
    table.add_row("peak concurrent batches", f"{planned_batches:,.0f}", f"{r.peak_readers:,}")
    console.print(table)


def main() -> None:
    sys.exit(run())
