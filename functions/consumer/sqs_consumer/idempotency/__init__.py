"""Exactly-once effects per business event (SQS delivers at least once), at the cost of a batch.

Cut as Powertools cuts its idempotency utility, so that each part is read and replaced alone:

- ``port``: what the pipeline asks of a store (``Idempotency``) and the answers it gets
  (``Claim``, ``ClaimState``, ``Held``, the errors). The pipeline imports this and nothing below.
- ``fingerprint``: when two events are the same event (``fingerprint``, ``same_event``).
- ``records``: the table's item format, Powertools' own, and the items each step writes.
- ``dynamodb``: the transactions on DynamoDB (``DynamoDBStore``, ``DynamoDBIdempotency``).

Nothing here is imported by this package itself: importing the port never loads the store.
"""
