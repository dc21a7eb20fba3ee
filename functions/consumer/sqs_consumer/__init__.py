"""SQS consumer for AWS Lambda: typed events, routing and per-record dispositions."""
