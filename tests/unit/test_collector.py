"""The cyclic garbage collector during the function's init: paused while its modules load, then resumed
with what they made frozen; left as it was found when something else had turned it off."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sqs_consumer import clients, collector
from sqs_consumer.settings import ConsumerSettings

ROOT = Path(__file__).resolve().parents[2]

# Imports the handler as the runtime does at init, counting the collections made from its first import on.
INIT = """
import gc, json, sys
if sys.argv[1] == "off":
    gc.disable()
collections = []
def count(phase, info):
    if phase == "start" and "sqs_consumer.init_pause" in sys.modules:
        collections.append(info["generation"])
gc.callbacks.append(count)
frozen_before = gc.get_freeze_count()
import sqs_consumer.handler
print(json.dumps({"collections": len(collections), "enabled": gc.isenabled(),
                  "frozen": gc.get_freeze_count() - frozen_before}))
"""


# The first invocation's consumer, built after the init as lambda_handler builds it.
FIRST = """
import gc, json, sys
import sqs_consumer.handler as handler
frozen_before = gc.get_freeze_count()
handler._consumer()
print(json.dumps({"botocore": "botocore.session" in sys.modules, "enabled": gc.isenabled(),
                  "frozen": gc.get_freeze_count() - frozen_before}))
"""


def _run(code: str, argument: str = "", **settings: str) -> dict[str, object]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [os.environ.get("PYTHONPATH", ""), str(ROOT), str(ROOT / "functions" / "consumer")]
        ),
        "AWS_REGION": "us-east-1",
        ConsumerSettings.env_name("dlq_url"): "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
        **{ConsumerSettings.env_name(name): value for name, value in settings.items()},
    }
    command = [sys.executable, "-c", code, argument]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    report: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_init_loads_the_modules_without_a_collection_then_freezes_them_and_resumes_the_collector():
    # WHEN the handler's module is imported in a fresh process
    report = _run(INIT, "on")
    # THEN no collection ran while it loaded (its modules set off dozens otherwise), what it made
    # is frozen out of later collections, and the collector is on again
    assert report["collections"] == 0
    assert isinstance(report["frozen"], int) and report["frozen"] > 10_000
    assert report["enabled"] is True


def test_init_leaves_a_collector_that_was_off_off_and_freezes_nothing():
    report = _run(INIT, "off")
    assert report == {"collections": 0, "enabled": False, "frozen": 0}


def test_with_idempotency_the_first_consumer_loads_botocore_and_freezes_it_before_any_record():
    # WHEN the first invocation builds the consumer of a stage whose batches claim their records
    report = _run(FIRST, idempotency_table="idempotency")
    # THEN botocore and the table's model are loaded then, and frozen with the rest; the collector is on
    assert report["botocore"] is True
    assert isinstance(report["frozen"], int) and report["frozen"] > 10_000
    assert report["enabled"] is True


def test_without_idempotency_the_first_consumer_loads_no_botocore_and_freezes_nothing():
    report = _run(FIRST)
    assert report == {"botocore": False, "enabled": True, "frozen": 0}


def test_resume_after_init_resumes_only_what_the_init_paused(monkeypatch: pytest.MonkeyPatch):
    # GIVEN a process whose init did not pause the collector (it was resumed already)
    calls: list[str] = []
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(gc, "enable", lambda: calls.append("enable"))
    monkeypatch.setitem(collector._INIT, "paused", False)
    # WHEN the handler's module is loaded again (a test's reload)
    collector.resume_after_init()
    # THEN nothing is frozen nor turned on
    assert calls == []


def test_paused_runs_its_block_without_collections_and_leaves_the_collector_as_it_was():
    # GIVEN the collector on
    assert gc.isenabled()
    # WHEN a block runs paused
    with collector.paused():
        inside = gc.isenabled()
    # THEN the collector was off inside it, and is on again after it
    assert inside is False
    assert gc.isenabled()


def test_paused_leaves_a_collector_that_was_off_off():
    gc.disable()
    try:
        with collector.paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_clients_creation_runs_without_collections(monkeypatch: pytest.MonkeyPatch):
    # GIVEN a session that notes whether the collector is on while it makes a client
    seen: list[bool] = []

    class Session:
        def create_client(self, service: str, **_: object) -> str:
            seen.append(gc.isenabled())
            return service

    monkeypatch.setattr(clients, "_session", Session)
    # WHEN the function makes its DynamoDB client
    made: object = clients.dynamodb_client()
    # THEN botocore made it with the collector paused, and the collector is on again
    assert made == "dynamodb"
    assert seen == [False]
    assert gc.isenabled()
