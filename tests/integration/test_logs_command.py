"""sqs-logs (make logs) against moto's CloudWatch Logs: one event's story, follow mode, the stage's log
group found from the deploy's outputs or the stack, a clear line without credentials."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from moto import mock_aws

from operations.logs import main, read

GROUP = "/aws/lambda/SqsConsumer-dev-Consumer"
TRACE_ID = "1-6942a1b0-5f3c7e0a9b1d2c3e4f506172"


def consumer_line(message: str, **keys: str) -> str:
    return json.dumps({"level": "WARNING", "message": message, **keys})


@pytest.fixture
def logs(aws_credentials):
    with mock_aws():
        client = boto3.client("logs", region_name="us-east-1")
        client.create_log_group(logGroupName=GROUP)
        client.create_log_stream(logGroupName=GROUP, logStreamName="2026/12/06/[$LATEST]a")
        yield client


def put(client, *messages: str, ago_ms: int = 1_000) -> None:
    now = int(time.time() * 1000)
    client.put_log_events(
        logGroupName=GROUP,
        logStreamName="2026/12/06/[$LATEST]a",
        logEvents=[{"timestamp": now - ago_ms + index, "message": message} for index, message in enumerate(messages)],
    )


def test_logs_tell_one_events_story_in_time_order(logs, capsys):
    # GIVEN the consumer's lines about two events, and one about the first from before the window
    put(logs, consumer_line("Record failed; it will be retried", event_id="evt_4711", trace_id=TRACE_ID),
        consumer_line("Record failed; it will be retried", event_id="evt_other"), ago_ms=60_000)  # fmt: skip
    put(logs, consumer_line("Record quarantined to the DLQ", event_id="evt_4711", trace_id=TRACE_ID))
    put(logs, consumer_line("an hour ago", event_id="evt_4711"), ago_ms=3_600_000)

    # WHEN asked for evt_4711 over the last 15 minutes
    assert main(["--log-group", GROUP, "--region", "us-east-1", "--event-id", "evt_4711", "--since", "15m"]) == 0

    # THEN its two lines, oldest first, each with its time; then a count on stderr
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert [json.loads(line.split("  ", 1)[1])["message"] for line in lines] == [
        "Record failed; it will be retried",
        "Record quarantined to the DLQ",
    ]
    assert all(line[:4].isdigit() and line.split("  ", 1)[0].endswith("Z") for line in lines)
    assert "2 line(s) naming evt_4711" in captured.err


def test_logs_by_trace_id_find_the_lines_that_carry_it(logs, capsys):
    put(logs, consumer_line("Record failed; it will be retried", event_id="evt_1", trace_id=TRACE_ID),
        consumer_line("Record succeeded", event_id="evt_2"))  # fmt: skip

    assert main(["--log-group", GROUP, "--region", "us-east-1", "--trace-id", TRACE_ID]) == 0

    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line.split("  ", 1)[1])["event_id"] == "evt_1"


def test_logs_follow_prints_each_new_line_once(logs):
    # GIVEN two lines, and a third written while follow mode waits between its rounds
    put(logs, consumer_line("first", event_id="e"), consumer_line("second", event_id="e"))
    waits = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 1:
            put(logs, consumer_line("third", event_id="e"), ago_ms=0)

    # WHEN followed for three rounds
    start = int(time.time() * 1000) - 60_000
    events = list(read(logs, GROUP, start_ms=start, pattern='"e"', follow=True, sleep=sleep, polls=3))

    # THEN each line came once, in order, though the later rounds saw the earlier lines again
    assert [json.loads(event["message"])["message"] for event in events] == ["first", "second", "third"]
    assert len(waits) == 2


def test_logs_find_the_stage_log_group_in_the_deploys_outputs(logs, tmp_path, capsys):
    put(logs, consumer_line("Record quarantined to the DLQ", event_id="evt_9"))
    outputs = tmp_path / "outputs-dev.json"
    outputs.write_text(json.dumps({"SqsConsumer-dev": {"LogGroupName": GROUP, "QueueUrl": "https://sqs/q"}}))

    assert main(["--stage", "dev", "--outputs", str(outputs), "--region", "us-east-1"]) == 0

    assert "evt_9" in capsys.readouterr().out


def test_logs_find_the_stage_log_group_in_the_stacks_outputs(logs, tmp_path, capsys):
    # GIVEN no outputs file, and the deployed stack with its LogGroupName output
    put(logs, consumer_line("Record quarantined to the DLQ", event_id="evt_10"))
    template = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {"LogGroupName": {"Value": GROUP}}}  # fmt: skip
    boto3.client("cloudformation", region_name="us-east-1").create_stack(
        StackName="SqsConsumer-dev", TemplateBody=json.dumps(template)
    )

    assert main(["--stage", "dev", "--outputs", str(tmp_path / "none.json"), "--region", "us-east-1"]) == 0

    assert "evt_10" in capsys.readouterr().out


def test_logs_without_credentials_is_one_line_with_what_to_do(monkeypatch, tmp_path, capsys):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    code = main(["--log-group", GROUP, "--region", "us-east-1", "--endpoint-url", "http://127.0.0.1:9"])

    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith("sqs-logs: NoCredentialsError")
    assert "configure AWS credentials" in line
    assert code == 1


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--since", "15x"], "--since: not a duration"),
        (["--since", "0m"], "--since: not a duration"),
        (["--trace-id", "Root=1-abc"], "--trace-id: not an X-Ray trace id"),
        (["--event-id", "a", "--trace-id", TRACE_ID], "not allowed with argument"),
    ],
)
def test_logs_bad_arguments_are_one_line_and_exit_2(argv, says, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert says in line and line.startswith("sqs-logs: error:")


def test_logs_follow_prints_another_instances_late_lines_stamped_before_the_newest_seen(logs):
    # GIVEN one instance's line, and another instance whose earlier-stamped line reaches CloudWatch Logs later
    logs.create_log_stream(logGroupName=GROUP, logStreamName="2026/12/06/[$LATEST]b")
    now = int(time.time() * 1000)
    put(logs, consumer_line("instance a", event_id="e"), ago_ms=1_000)
    waits = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 1:  # written 5 s before instance a's line, delivered after the first round
            late = {"timestamp": now - 6_000, "message": consumer_line("instance b", event_id="e")}
            logs.put_log_events(logGroupName=GROUP, logStreamName="2026/12/06/[$LATEST]b", logEvents=[late])

    # WHEN followed for three rounds
    events = list(read(logs, GROUP, start_ms=now - 60_000, pattern='"e"', follow=True, sleep=sleep, polls=3))

    # THEN the late line is printed, once, and the first one is not printed again
    assert [json.loads(event["message"])["message"] for event in events] == ["instance a", "instance b"]
