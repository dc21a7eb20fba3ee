"""The CDK stack: queues, consumer function, event source mapping, monitoring."""
