"""What SQS refuses, as code: used to build messages it will accept.

moto accepts all of these; SQS does not (its SendMessage reference):

- at most 10 message attributes;
- bodies and attribute values only of the characters
  ``#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF``;
- the body plus every attribute's name, data type and value within the queue's
  ``MaximumMessageSize`` (256 KiB when unset, 1 MiB at most);
- a FIFO deduplication id of at most 128 characters from ``[A-Za-z0-9]`` and punctuation.
"""

from __future__ import annotations

import base64
import hashlib
import re
import string
from functools import cache
from typing import Any

MAX_MESSAGE_ATTRIBUTES = 10
DEFAULT_MAX_MESSAGE_BYTES = 262_144
LARGEST_MAX_MESSAGE_BYTES = 1_048_576
MAX_DEDUPLICATION_ID_CHARS = 128

_DEDUPLICATION_ID_CHARS = frozenset(string.ascii_letters + string.digits + string.punctuation)


@cache
def _forbidden() -> re.Pattern[str]:
    """Compiled on first use (a quarantine's text, a producer's check): its Unicode ranges take a few ms
    to compile, which a cold start whose records all succeed never needs."""
    return re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def has_forbidden_characters(text: str) -> bool:
    return _forbidden().search(text) is not None


def sqs_safe(text: str) -> str:
    """``text`` with every character SQS refuses replaced by U+FFFD."""
    return _forbidden().sub("\ufffd", text)


def utf8_size(text: str) -> int:
    # ASCII text, most bodies, is as long in UTF-8 as in characters: no copy to count it.
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def trim_utf8(text: str, max_bytes: int, marker: str = "…") -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes, ending with ``marker`` when cut."""
    if utf8_size(text) <= max_bytes:
        return text
    room = max_bytes - utf8_size(marker)
    if room <= 0:
        return ""
    return text.encode("utf-8", "surrogatepass")[:room].decode("utf-8", "ignore") + marker


def attribute_size(name: str, value: dict[str, Any]) -> int:
    """What one attribute (SendMessage shape) adds to the message size: name, type and value."""
    size = utf8_size(name) + utf8_size(str(value.get("DataType", "")))
    if value.get("StringValue") is not None:
        size += utf8_size(value["StringValue"])
    if value.get("BinaryValue") is not None:
        binary = value["BinaryValue"]
        size += len(binary if isinstance(binary, bytes | bytearray) else base64.b64decode(binary))
    return size


def message_size(body: str, attributes: dict[str, dict[str, Any]] | None = None) -> int:
    return utf8_size(body) + sum(attribute_size(name, value) for name, value in (attributes or {}).items())


def deduplication_id(key: str) -> str:
    """A FIFO deduplication id for ``key``: the key itself when SQS accepts it, else its SHA-256.

    Cutting a long key would give two distinct keys that share a prefix the same id, and SQS
    would silently drop the second message.
    """
    if 0 < len(key) <= MAX_DEDUPLICATION_ID_CHARS and all(char in _DEDUPLICATION_ID_CHARS for char in key):
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
