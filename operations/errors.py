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
    return hint_for(one_line(exc))


def hint_for(error: str) -> str:
    """What to do about an error as ``one_line`` writes it (its code or class name first), or nothing."""
    name = error.split(":", 1)[0]
    if name == "NoRegionError":
        return " (pass --region or set AWS_REGION)"
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return " (configure AWS credentials, e.g. AWS_PROFILE; for the local pipeline any value works)"
    if name == "EndpointConnectionError":
        return " (is the endpoint running? check --endpoint-url)"
    if "NonExistentQueue" in error or "QueueDoesNotExist" in error:
        return " (check the queue URL or ARN: the stack outputs QueueUrl, DeadLetterQueueUrl, DeadLetterQueueArn)"
    if name in ("AccessDenied", "AccessDeniedException"):
        return " (the caller lacks a permission: a producer needs sqs:SendMessage; see the stage's producer_principals)"
    if name in ("InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch", "ExpiredToken"):
        return " (the credentials are not valid here: check AWS_PROFILE or refresh them)"
    return ""
