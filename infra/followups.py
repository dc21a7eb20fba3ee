"""Follow-up destinations: each declared name resolved to its queue's URL and ARN (docs/design.md §4).

A destination is a queue ARN, a queue URL, or one of the stage's consumers (its queue, made in the same
stack). The function gets the URLs in ``FOLLOWUP_QUEUES`` and ``sqs:SendMessage`` on those queues only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import aws_sqs as sqs

from infra.settings import SQS_QUEUE_ARN, SQS_QUEUE_URL

# The partition of an ARN by the domain of its queue's URL, and back.
_CHINA = ".cn"


@dataclass(frozen=True)
class Destination:
    """A queue follow-ups are sent to: its URL (what the function sends to) and ARN (what it is granted)."""

    url: str
    arn: str


def queue_destination(target: str) -> Destination | None:
    """A destination written as a queue ARN or URL; None for a consumer's name."""
    if match := SQS_QUEUE_ARN.fullmatch(target):
        region, account, name = match.group(2), match.group(3), match.group(4)
        domain = "amazonaws.com.cn" if target.startswith("arn:aws-cn:") else "amazonaws.com"
        return Destination(f"https://sqs.{region}.{domain}/{account}/{name}", target)
    if match := SQS_QUEUE_URL.fullmatch(target):
        region = match.group(1) or match.group(2)
        partition = "aws-cn" if match.group(3) == _CHINA else "aws"
        return Destination(target, f"arn:{partition}:sqs:{region}:{match.group(4)}:{match.group(5)}")
    return None


def resolve(declared: Mapping[str, str], queues: Mapping[str, sqs.IQueue]) -> dict[str, Destination]:
    """Every declared destination's queue; a consumer's name is looked up in ``queues`` (the stage's consumers,
    which the settings checked)."""
    resolved = {}
    for name, target in declared.items():
        destination = queue_destination(target)
        if destination is None:
            queue = queues[target]
            destination = Destination(queue.queue_url, queue.queue_arn)
        resolved[name] = destination
    return resolved
