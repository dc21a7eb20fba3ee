"""The upgrade rehearsal on LocalStack (make rehearse): the committed tree's dev template upgraded to the
working tree's, with messages in the queue and the DLQ; and an upgrade that renames the queue's construct
id, which must be reported as lost messages. About a minute: the two synths, then seconds on LocalStack."""

from __future__ import annotations

import json
import urllib.request

import pytest

from infra import localstack
from infra.rehearsal_stack import TEMPLATE_BODY_LIMIT
from infra.rehearsal_template import filter_template
from infra.rehearse import rehearse_templates, report, templates

pytestmark = pytest.mark.e2e
MESSAGES = 7  # not a multiple of a batch of 10: a lost last batch would show


@pytest.fixture(scope="module")
def dev_templates():
    old, new, _ = templates("HEAD", "dev")
    return filter_template(old), filter_template(new)


@pytest.fixture
def endpoint():
    """A LocalStack for each test: the stage's queues have fixed names."""
    with localstack.running() as running:
        yield running
    # THEN, once the block is over, nothing answers on its port (it was killed, not asked)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{running.url}/_localstack/health", timeout=2)


def _queue_of(outcomes, suffix):
    return next(q for q in outcomes if q.path.endswith(suffix))


def test_rehearse_an_upgrade_keeps_every_message_in_the_queue_and_the_dlq(dev_templates, endpoint):
    # GIVEN the working tree's template with a resource more, made larger than a template body may be
    # (it goes through S3)
    old, new = dev_templates
    extra = {"Type": "AWS::SNS::Topic", "Metadata": {"Padding": "x" * TEMPLATE_BODY_LIMIT}}
    larger = {**new.template, "Resources": {**new.template["Resources"], "RehearsalExtraTopic": extra}}
    assert len(json.dumps(larger)) > TEMPLATE_BODY_LIMIT

    # WHEN
    rehearsal = rehearse_templates(old.template, larger, endpoint, "SqsConsumer-dev", MESSAGES)

    # THEN
    assert rehearsal.create_status == "CREATE_COMPLETE"
    assert rehearsal.update_status == "UPDATE_COMPLETE", rehearsal.update_problems
    for suffix in ("Consumer/Queues/Queue/Resource", "Consumer/Queues/DeadLetterQueue/Resource"):
        queue = _queue_of(rehearsal.queues, suffix)
        assert (queue.sent, queue.found, queue.after_url) == (MESSAGES, MESSAGES, queue.before_url)
    assert rehearsal.ok and rehearsal.lost == 0
    text = report(rehearsal, old, new, "test")
    assert f"{MESSAGES} before, {MESSAGES} after, same queue" in text
    assert f"no message lost ({2 * MESSAGES} of {2 * MESSAGES} where they were)" in text
    assert "AWS::Lambda::Function x1" in text and "AWS::DynamoDB::GlobalTable x1" in text


def test_rehearse_reports_the_messages_of_a_queue_whose_construct_id_was_renamed_as_lost(dev_templates, endpoint):
    # GIVEN an upgrade in which the queue's construct id changes: its logical id, everywhere it is used
    old, _ = dev_templates
    queue_id = next(lid for lid, r in old.template["Resources"].items()
                    if r["Metadata"]["aws:cdk:path"].endswith("Consumer/Queues/Queue/Resource"))  # fmt: skip
    renamed = json.loads(json.dumps(old.template).replace(queue_id, "ConsumerQueuesRenamedQueue0123ABCD"))

    # WHEN
    rehearsal = rehearse_templates(old.template, renamed, endpoint, "SqsConsumer-dev", MESSAGES)

    # THEN the queue's messages are not where they were, and the report says so; the DLQ's are
    queue = _queue_of(rehearsal.queues, "Consumer/Queues/Queue/Resource")
    assert queue.after_url is None and queue.found == 0
    assert _queue_of(rehearsal.queues, "DeadLetterQueue/Resource").found == MESSAGES
    assert not rehearsal.ok and rehearsal.lost == MESSAGES
    text = report(rehearsal, old, old, "test")
    assert f"LOST {MESSAGES}: its logical id is gone from the stack" in text
    assert f"FAILED, {MESSAGES} message(s) lost" in text
