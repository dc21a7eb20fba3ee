"""The partial batch response, built by Powertools' SQS batch processor from the settled dispositions."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.base import FailureResponse
from aws_lambda_powertools.utilities.batch.exceptions import ExceptionInfo
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from sqs_consumer.errors import describe


class SettledBatchProcessor(BatchProcessor):
    """Powertools' SQS batch processor over a batch whose records are already settled.

    The records ran before (parsed, claimed and awaited together, which a per-record handler
    cannot do); here each listed record goes through Powertools' ``failure_handler``, and
    Powertools builds the response from them as it does for any processor. A success needs no
    bookkeeping: going through the handler call for each one cost as much as validating its body.
    """

    def __init__(self) -> None:
        super().__init__(EventType.SQS, raise_on_entire_batch_failure=False)
        # The batch's listed records, set for each batch: message id -> its error.
        self.listed: dict[str, Exception] = {}

    def _prepare(self) -> None:
        # Powertools' own reset, with a fresh literal for its deep copy of the default response.
        self.success_messages.clear()
        self.fail_messages.clear()
        self.exceptions.clear()
        self.batch_response = {"batchItemFailures": []}

    def process(self) -> list[tuple[Any, ...]]:
        results: list[tuple[Any, ...]] = []
        for raw in self.records:
            error = self.listed.get(raw["messageId"])
            if error is not None:
                results.append(self.failure_handler(SQSRecord(raw), (type(error), error, error.__traceback__)))
        return results

    def failure_handler(self, record: Any, exception: ExceptionInfo) -> FailureResponse:
        """Powertools' bookkeeping of a failed record, without its text of the error: that is
        ``f"{type}:{error}"``, which raises for an exception whose ``__str__`` raises (failing the whole
        batch) and costs a string and a debug call per listed record. The settlement has logged each one."""
        self.exceptions.append(exception)
        self.fail_messages.append(record)
        return ("fail", describe(exception[1]) if exception[1] is not None else "", record)

    def respond(self, event: dict[str, Any], listed: dict[str, Exception]) -> PartialItemFailureResponse:
        """Every failure is listed, even when all records fail (docs/decisions/002-all-failed-batch-returns-list.md)."""
        self.listed = listed
        try:
            return process_partial_response(event, _settled, self, None)
        finally:
            self.listed = {}


def _settled(record: SQSRecord) -> None:
    """The record handler Powertools is given: never called, every record being settled already."""
    raise AssertionError(f"record {record.message_id} was not settled before the response")
