"""The S3 pointer format of AWS's extended client libraries (Java, Python, .NET, JavaScript).

A message whose payload is too large for the queue carries, instead of the payload, the body::

    ["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": "...", "s3Key": "..."}]

and a numeric message attribute, ``ExtendedPayloadSize`` (or ``SQSLargePayloadSize``, which the
Java client still sends by default), holding the payload's size in bytes. Older Java clients name
the pointer class ``com.amazon.sqs.javamessaging.MessageS3Pointer``. Written in one place: the
consumer reads this format and the publisher writes it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

POINTER_CLASS = "software.amazon.payloadoffloading.PayloadS3Pointer"
LEGACY_POINTER_CLASS = "com.amazon.sqs.javamessaging.MessageS3Pointer"
POINTER_CLASSES = frozenset({POINTER_CLASS, LEGACY_POINTER_CLASS})
SIZE_ATTRIBUTE = "ExtendedPayloadSize"
LEGACY_SIZE_ATTRIBUTE = "SQSLargePayloadSize"
SIZE_ATTRIBUTES = (SIZE_ATTRIBUTE, LEGACY_SIZE_ATTRIBUTE)
# What botocore accepts as a bucket: a name (its own rule, which still admits legacy names), or the ARN
# of an access point (S3, S3 on Outposts, Object Lambda) in a named region. Anything else (a bad name,
# another service's ARN, a Multi-Region Access Point, whose SigV4A signing the runtime cannot do) is
# refused by botocore before any request, and no retry changes that: the pointer is invalid.
_BUCKET_NAME = re.compile(r"[a-zA-Z0-9.\-_]{1,255}")
_ACCESS_POINT_ARN = re.compile(
    r"arn:aws[a-z-]*:(?:s3|s3-outposts|s3-object-lambda):[a-z0-9-]+:[0-9]{12}:(?:accesspoint|outpost)[/:][\x21-\x7e]+"
)
# The largest body taken for a pointer (alone or in an SNS notification) when a batch's payloads are
# looked for ahead: a pointer is a bucket and a key (at most 1,024 bytes); a larger body is parsed once, by
# its record's parse, which reads its payload then (with the batch's deadline, as any read).
MAX_POINTER_BODY_CHARS = 65_536


@dataclass(frozen=True, slots=True)
class PayloadPointer:
    """Where an offloaded payload is, as the message body names it."""

    bucket: str
    key: str

    def body(self) -> str:
        """The message body that points here (the extended clients' own separators)."""
        return json.dumps([POINTER_CLASS, {"s3BucketName": self.bucket, "s3Key": self.key}])

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def size_attribute(size: int) -> dict[str, dict[str, str]]:
    """The message attribute that marks an offloaded payload of ``size`` bytes (SendMessage shape)."""
    return {SIZE_ATTRIBUTE: {"DataType": "Number", "StringValue": str(size)}}


def announced_size(attributes: Mapping[str, Any], value_key: str) -> str | None:
    """The size a message's attributes announce for its payload, as text (None without the attribute).

    ``value_key`` is where an attribute keeps its value: ``stringValue`` in Lambda's SQS records,
    ``Value`` in an SNS notification's ``MessageAttributes``.
    """
    for name in SIZE_ATTRIBUTES:
        value = attributes.get(name)
        if value is not None:
            return str(value.get(value_key)) if isinstance(value, Mapping) else str(value)
    return None


def looks_like_pointer(document: Any) -> bool:
    """Whether a decoded body is taken for a pointer: a list whose first item is a pointer class
    (``pointer_from`` then says what else is wrong with it)."""
    return isinstance(document, list) and bool(document) and isinstance(document[0], str) and (
        document[0] in POINTER_CLASSES
    )  # fmt: skip


def pointer_from(document: Any) -> PayloadPointer:
    """The pointer in a decoded body, or ``ValueError`` saying what is wrong with it."""
    if not looks_like_pointer(document) or len(document) != 2:
        raise ValueError(f"not an S3 payload pointer: expected [{POINTER_CLASS!r}, {{s3BucketName, s3Key}}]")
    location = document[1]
    if not isinstance(location, dict):
        raise ValueError("S3 payload pointer: the second item must be an object with s3BucketName and s3Key")
    bucket, key = location.get("s3BucketName"), location.get("s3Key")
    if isinstance(bucket, str) and bucket and isinstance(key, str) and key:
        if not (_BUCKET_NAME.fullmatch(bucket) or _ACCESS_POINT_ARN.fullmatch(bucket)):
            raise ValueError(
                f"S3 payload pointer: s3BucketName {bucket[:300]!r} is not a bucket name or access point ARN"
            )
        return PayloadPointer(bucket, key)
    missing = [
        name for name, value in (("s3BucketName", bucket), ("s3Key", key)) if not isinstance(value, str) or not value
    ]
    raise ValueError(f"S3 payload pointer without {' and '.join(missing)}")


def may_hold_pointer(body: str) -> bool:
    """Whether a body may hold a pointer, alone or in an SNS notification's Message: a cheap test before
    the body is decoded, which never misses one. Decoded, a pointer names its class; in the text, that
    name is there as it is, or written with ``\\u`` escapes (JSON's only way to write a letter otherwise)."""
    return len(body) <= MAX_POINTER_BODY_CHARS and ("S3Pointer" in body or "\\u" in body)
