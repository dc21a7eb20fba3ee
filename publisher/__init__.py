"""Publishing events to the queue from upstream services.

Events are validated against the consumer's own models before they are sent,
so a bad event fails at the producer instead of landing in the DLQ.
"""

from publisher.client import EventPublisher, PublishResult

__all__ = ["EventPublisher", "PublishResult"]
