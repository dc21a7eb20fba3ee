"""Imported by handler.py before anything else: pauses the cyclic garbage collector while the function's
modules load. handler.py resumes it when they have (collector.py says why)."""

from sqs_consumer.collector import pause_for_init

pause_for_init()
