"""`make chaos OUTAGE=N`, shortened: the orders API down for 20 s under a steady flow of orders, through
the whole local pipeline (the function pausing its own mapping through moto's Lambda API, its probe
scheduled in moto's Scheduler and fired by the local scheduler)."""

from __future__ import annotations

from pathlib import Path

from local.outage_run import OutagePlan, run
from local.template import load_plan

PLAN = OutagePlan(outage=20, before=5, after=5, rate=2)


def test_with_breakers_the_queue_waits_out_the_outage_and_nothing_reaches_the_dlq(local_template: Path, tmp_path: Path):
    # GIVEN breakers with a short cool-down (the stage's default is longer than this test)
    overrides = {"BREAKER_COOL_DOWN_SECONDS": "3", "BREAKER_COOL_DOWN_CAP_SECONDS": "6"}

    # WHEN the orders API is down for 20 s while orders keep arriving
    report = run(local_template, PLAN, breakers=True, overrides=overrides, timeout=120, log_dir=tmp_path)

    # THEN every order had its effect once, none reached the DLQ, and the queue drained
    assert report.problems() == []
    assert report.dead == {}
    assert len(report.published) == PLAN.count
    assert all(report.effects[event_id] == 1 for event_id in report.published)
    # the function paused its mapping during the outage (a probe's trial may enable it for a while), and
    # a probe it scheduled resumed it once the API was back
    assert report.outage is not None
    down, up = report.outage
    paused = [at for at, enabled, _ in report.mapping_changes if not enabled]
    assert paused and down <= paused[0] <= up
    assert [at for at, enabled, _ in report.mapping_changes if enabled and at >= up]
    assert report.mapping_changes[-1][1] is True
    assert report.probes >= 1
    # the API saw the batches in flight when the breaker opened (another instance's may start on the state it
    # cached, up to 2 s old), then one record per probe's trial (an instance may take one more itself when a
    # probe is late), not the traffic: a trial batch per poller would be up to 20 calls a probe
    mapping = load_plan(local_template).mapping
    assert len(report.calls_while_down) <= mapping.batch_size * mapping.max_concurrency + 2 * report.probes
    after_pause = [call for call in report.calls_while_down if call.at >= paused[0]]
    assert len(after_pause) <= mapping.batch_size + 2 * report.probes


def test_without_breakers_the_same_outage_fills_the_dlq(local_template: Path, tmp_path: Path):
    # GIVEN no breakers and retries short enough for 20 s to use up every receive (`make chaos
    # OUTAGE=120 BREAKER=off` runs the stage's own)
    overrides = {"RETRY_BACKOFF_BASE_SECONDS": "1", "RETRY_BACKOFF_CAP_SECONDS": "2"}

    report = run(local_template, PLAN, breakers=False, overrides=overrides, timeout=120, log_dir=tmp_path)

    # THEN orders that arrived during the outage were quarantined after their retries; none lost or repeated
    assert report.dead
    assert set(report.dead.values()) == {"retries_exhausted"}
    assert report.lost == []
    assert report.repeated == []
    assert report.problems() == []
