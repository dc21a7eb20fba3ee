"""Effects run twice after a crash: group commit beside the per-record and batch-end alternatives.

The same sweep for each (tests/support/crash.py): a batch of 10 fast and slow handlers in a process
SIGKILLed at points spread over the batch, against the local pipeline's store with 25 ms injected
per store call, then the same batch redelivered after the in-progress expiry. Counted: effects
that returned more than two store round trips before the kill and ran again (target 0 for ours),
and all effects that ran twice.

    python -m benchmarks.crash_sweep --template cdk.out/SqsConsumer-local.template.json [--kills 10]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.report import Verdict
from tests.support.crash import CrashRig, Sweep

STRATEGIES = {
    "group": "group commit (the function)",
    "powertools": "Powertools @idempotent_function per record",
    "batch_end": "completions written at the batch's end",
}


def kill_points(count: int) -> list[float]:
    """Spread from just after the batch starts to after its last handler returns."""
    return [round(0.05 + 1.1 * index / max(1, count - 1), 3) for index in range(count)]


def run(template: Path, kills: int) -> list[Sweep]:
    with tempfile.TemporaryDirectory(prefix="crash-sweep-") as work:
        rig = CrashRig(template, Path(work))
        try:
            round_trip = rig.round_trip_s()
            return [rig.sweep(strategy, kill_points(kills), round_trip) for strategy in STRATEGIES]
        finally:
            rig.stop()


def verdicts(sweeps: list[Sweep]) -> list[Verdict]:
    """Group commit's effects run twice over the sweep, target 0, beside the alternatives' counts."""
    others = ", ".join(f"{STRATEGIES[sweep.strategy]}: {sweep.ran_twice()}" for sweep in sweeps[1:])
    return [
        Verdict(
            "crash mid-batch: effects run twice, returned > 2 round trips before the kill",
            sweep.ran_twice(),
            "<= 0",
            f"of {sweep.effects_before_kill()} done by then; {others}",
        )
        for sweep in sweeps
        if sweep.strategy == "group"
    ]


def render(sweeps: list[Sweep]) -> str:
    first = sweeps[0]
    lines = [
        f"Crash mid-batch: {len(first.trials)} SIGKILLs per design, batches of 10, 25 ms per store call "
        f"(a round trip {first.round_trip_s * 1000:.0f} ms with moto's own time)",
        f"{'design':<46} {'ran twice, returned > 2 RTT before kill':>40} {'ran twice, all':>15} "
        f"{'effects > 2 RTT before kill':>28}",
    ]
    for sweep in sweeps:
        target = "   target 0" if sweep.strategy == "group" else ""
        lines.append(
            f"{STRATEGIES[sweep.strategy]:<46} {sweep.ran_twice():>40} {sweep.ran_twice_in_all():>15} "
            f"{sweep.effects_before_kill():>28}{target}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.crash_sweep", description=__doc__)
    parser.add_argument("--template", type=Path, required=True, help="the synthesized local stage's template")
    parser.add_argument("--kills", type=int, default=10, help="kill points per design (default 10)")
    args = parser.parse_args(argv)
    if not args.template.is_file():
        parser.error(f"no template at {args.template}: run `make local` or `cdk synth -c stage=local` first")
    if args.kills < 1:
        parser.error("--kills must be at least 1")
    print(render(run(args.template, args.kills)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
