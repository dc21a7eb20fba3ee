"""The consumer as one record pipeline: parse, claim, run, settle (consumer.py reads top-down)."""

from sqs_consumer.pipeline.consumer import BatchConsumer

__all__ = ["BatchConsumer"]
