"""Event handlers: plain functions ``(event, record_info) -> None``, sync or async."""
