"""Expected failures of the command-line tools as one line that says what to do."""

from __future__ import annotations


def one_line(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        error = response["Error"]
        return f"{error.get('Code', type(exc).__name__)}: {error.get('Message', '')}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"


def hint(exc: BaseException) -> str:
    """What to do about the usual failures, or nothing."""
    text = one_line(exc)
    name = type(exc).__name__
    if name == "NoRegionError":
        return " (pass --region or set AWS_REGION)"
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return " (configure AWS credentials, e.g. AWS_PROFILE; for the local pipeline any value works)"
    if name == "EndpointConnectionError":
        return " (is the endpoint running? check --endpoint-url)"
    if "NonExistentQueue" in text or "QueueDoesNotExist" in text:
        return " (check the queue URL or ARN: the stack outputs QueueUrl, DeadLetterQueueUrl, DeadLetterQueueArn)"
    return ""
