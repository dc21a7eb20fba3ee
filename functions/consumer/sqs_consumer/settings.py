"""The function's settings: one typed object, read once from the environment.

The environment variable names are part of the contract with the stack:
``infra/`` builds the function's environment from ``ConsumerSettings.env_name``
so no name is written twice.

A plain pydantic model validated from ``os.environ``, not pydantic-settings: the
function reads nothing but flat variables, and importing pydantic-settings cost
~30 ms of every cold start (docs/decisions/008-settings-model.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import cache
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sqs_consumer.errors import SettingsError
from sqs_consumer.retry import MAX_BACKOFF_SECONDS
from sqs_consumer.sqs_limits import DEFAULT_MAX_MESSAGE_BYTES, LARGEST_MAX_MESSAGE_BYTES

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class RateLimitSetting(BaseModel):
    """A dependency's rate limit: calls a second, across every instance, and the burst above it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate_per_second: float = Field(gt=0, le=100_000, allow_inf_nan=False)
    burst: int | None = Field(default=None, ge=1, le=1_000_000)


# The function's settings by concern, as the stack's are (infra/settings.py). ConsumerSettings composes them,
# flat as the environment carries them; its fields keep this order (pydantic takes a base's fields before those
# of the bases listed before it). The concerns are plain classes, whose fields pydantic collects as a model's:
# as models, each collecting its fields again to be validated only as part of the whole, they would add about
# 1.5 ms to the cold start under 3.14; as plain classes, about 0.3 ms (the bases' method resolution).
class PowertoolsSettings:
    """Powertools' own variables: the service's name, its metrics and its logs."""

    service_name: str = Field(
        default="sqs-consumer", min_length=1, validation_alias=AliasChoices("POWERTOOLS_SERVICE_NAME", "service_name")
    )
    metrics_namespace: str = Field(
        default="SqsConsumer",
        min_length=1,
        validation_alias=AliasChoices("POWERTOOLS_METRICS_NAMESPACE", "metrics_namespace"),
    )
    log_level: LogLevel = Field(default="INFO", validation_alias=AliasChoices("POWERTOOLS_LOG_LEVEL", "log_level"))


class RecordSettings:
    """How a batch's records are run: where a quarantined one goes, the time kept in reserve, how many at once."""

    dlq_url: str = Field(
        pattern=r"^https?://\S+$",
        description="Where quarantined messages are sent.",
        validation_alias=AliasChoices("DLQ_URL", "dlq_url"),
    )
    time_reserve_ms: int = Field(
        default=5_000,
        ge=0,
        le=900_000,
        description="No record starts once the remaining time is below this (the seed's WORKER_SHUTDOWN_TIMEOUT).",
        validation_alias=AliasChoices("TIME_RESERVE_MS", "time_reserve_ms"),
    )
    max_concurrent_records: int = Field(
        default=10,
        ge=1,
        le=10_000,
        description="How many records of a standard-queue batch may run their async handlers at once.",
        validation_alias=AliasChoices("MAX_CONCURRENT_RECORDS", "max_concurrent_records"),
    )


class RetrySettings:
    """When a failed record is retried, and when it is quarantined instead (the DLQ's size bound)."""

    retry_backoff_base_seconds: float = Field(
        default=0,
        ge=0,
        le=MAX_BACKOFF_SECONDS,
        description="First retry delay; doubles with each receive. 0 leaves retries to the visibility timeout.",
        validation_alias=AliasChoices("RETRY_BACKOFF_BASE_SECONDS", "retry_backoff_base_seconds"),
    )
    retry_backoff_cap_seconds: float = Field(
        default=300,
        gt=0,
        le=MAX_BACKOFF_SECONDS,
        description="Longest retry delay (SQS refuses a visibility that ends 12 h after the receive).",
        validation_alias=AliasChoices("RETRY_BACKOFF_CAP_SECONDS", "retry_backoff_cap_seconds"),
    )
    max_receive_count: int | None = Field(
        default=None,
        ge=1,
        le=1_000,
        description=(
            "The queue's redrive maxReceiveCount: on this receive, a record that fails (or never starts) is"
            " quarantined with its reason instead of being left to SQS's redrive. Unset leaves it to the redrive."
        ),
        validation_alias=AliasChoices("MAX_RECEIVE_COUNT", "max_receive_count"),
    )
    dlq_max_message_bytes: int = Field(
        default=DEFAULT_MAX_MESSAGE_BYTES,
        ge=1_024,
        le=LARGEST_MAX_MESSAGE_BYTES,
        description="The DLQ's MaximumMessageSize: a quarantined copy's body and attributes fit within it.",
        validation_alias=AliasChoices("DLQ_MAX_MESSAGE_BYTES", "dlq_max_message_bytes"),
    )

    def _backoff_cap_covers_base(self) -> None:
        if self.retry_backoff_base_seconds > self.retry_backoff_cap_seconds:
            raise ValueError(
                f"RETRY_BACKOFF_BASE_SECONDS ({self.retry_backoff_base_seconds:g}) must be <= "
                f"RETRY_BACKOFF_CAP_SECONDS ({self.retry_backoff_cap_seconds:g})"
            )


class IdempotencySettings:
    """The table of processed event_ids (idempotency/)."""

    idempotency_table: str | None = Field(
        default=None,
        min_length=3,
        description="DynamoDB table of processed event_ids; unset turns idempotency off.",
        validation_alias=AliasChoices("IDEMPOTENCY_TABLE", "idempotency_table"),
    )
    idempotency_ttl_seconds: int = Field(
        default=18 * 86_400,
        ge=60,
        description="How long a processed event_id is remembered.",
        validation_alias=AliasChoices("IDEMPOTENCY_TTL_SECONDS", "idempotency_ttl_seconds"),
    )


class SecretSettings:
    """The secrets handlers may read, and how long a read is cached (secrets.py)."""

    secret_names: dict[str, str] = Field(
        default_factory=dict,
        description="The secrets handlers may read (secrets.py): the name they use -> the Secrets Manager name.",
        validation_alias=AliasChoices("SECRET_NAMES", "secret_names"),
    )
    secrets_max_age_seconds: int = Field(
        default=300,
        ge=0,
        le=86_400,
        description="How long a secret read is cached before Secrets Manager is asked again.",
        validation_alias=AliasChoices("SECRETS_MAX_AGE_SECONDS", "secrets_max_age_seconds"),
    )


class PayloadSettings:
    """Offloaded payloads: the stage's bucket and the largest payload fetched (payloads.py)."""

    payload_bucket: str | None = Field(
        default=None,
        min_length=3,
        max_length=63,
        description=(
            "The stage's payload bucket, where producers offload events too large for the queue"
            " (payloads.py). Pointers are followed to whatever bucket they name that the function may read."
        ),
        validation_alias=AliasChoices("PAYLOAD_BUCKET", "payload_bucket"),
    )
    max_payload_bytes: int = Field(
        # Follows from the parse cost measured in docs/performance.md: a batch of 10 documents at the bound
        # (about 5 bytes of memory per byte of text), plus one being parsed at the worst case (28 per
        # byte), fits in the default 256 MB beside the runtime (docs/decisions/051-payload-bound.md).
        default=2 * 1_048_576,
        ge=LARGEST_MAX_MESSAGE_BYTES,
        le=2_147_483_648,
        description="The largest offloaded payload the function fetches; a larger one is quarantined.",
        validation_alias=AliasChoices("MAX_PAYLOAD_BYTES", "max_payload_bytes"),
    )


class FollowUpSettings:
    """Where handlers may emit follow-up events (followups.py)."""

    followup_queues: dict[str, str] = Field(
        default_factory=dict,
        description="The destinations handlers may emit follow-up events to (followups.py): name -> queue URL.",
        validation_alias=AliasChoices("FOLLOWUP_QUEUES", "followup_queues"),
    )


class TracingSettings:
    """X-Ray subsegments per handler call (tracing.py)."""

    tracing: bool = Field(
        default=False,
        description="One X-Ray subsegment per handler call under the invocation's segment, sent to the X-Ray "
        "daemon when Lambda samples the invocation (active tracing on).",
        validation_alias=AliasChoices("TRACING", "tracing"),
    )
    xray_daemon_address: str | None = Field(
        default=None,
        description="Set by Lambda: where the X-Ray daemon listens (UDP).",
        validation_alias=AliasChoices("AWS_XRAY_DAEMON_ADDRESS", "xray_daemon_address"),
    )


class DependencySettings:
    """The dependencies' circuit breakers, their probes, and their rate limits (dependencies/)."""

    breakers_enabled: bool = Field(
        default=False,
        description="Circuit breakers on the dependencies routes declare (docs/design.md §6); off, a dependency's "
        "outage is retried like any failure.",
        validation_alias=AliasChoices("BREAKERS_ENABLED", "breakers_enabled"),
    )
    breaker_threshold: int = Field(
        default=5, ge=1, le=10_000, description="Failures within the window that open a dependency's breaker.",
        validation_alias=AliasChoices("BREAKER_THRESHOLD", "breaker_threshold"),
    )  # fmt: skip
    breaker_window_seconds: float = Field(
        default=10, gt=0, le=3_600, description="The window the breaker's failures are counted in.",
        validation_alias=AliasChoices("BREAKER_WINDOW_SECONDS", "breaker_window_seconds"),
    )  # fmt: skip
    breaker_cool_down_seconds: float = Field(
        default=15, ge=1, le=3_600, description="How long an open breaker waits before its first probe.",
        validation_alias=AliasChoices("BREAKER_COOL_DOWN_SECONDS", "breaker_cool_down_seconds"),
    )  # fmt: skip
    breaker_cool_down_cap_seconds: float = Field(
        default=30, ge=1, le=MAX_BACKOFF_SECONDS, description="The longest cool-down, doubled after each failed probe.",
        validation_alias=AliasChoices("BREAKER_COOL_DOWN_CAP_SECONDS", "breaker_cool_down_cap_seconds"),
    )  # fmt: skip
    dependency_rate_limits: dict[str, RateLimitSetting] = Field(
        default_factory=dict,
        description="Rate limits per dependency (its name -> rate_per_second and optional burst), held across "
        "every instance.",
        validation_alias=AliasChoices("DEPENDENCY_RATE_LIMITS", "dependency_rate_limits"),
    )
    probe_schedule_group: str | None = Field(
        default=None, min_length=1, description="The EventBridge Scheduler group the function's probes are made in.",
        validation_alias=AliasChoices("PROBE_SCHEDULE_GROUP", "probe_schedule_group"),
    )  # fmt: skip
    # IAM's name characters written out in ASCII: a pattern with \w is Unicode-aware in pydantic-core, whose
    # regex for it takes about 30 ms to build at import, a tenth of the cold start.
    probe_role_name: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_+=,.@-]{1,64}$",
        description="The role EventBridge Scheduler invokes the function with for a probe (in the function's account).",
        validation_alias=AliasChoices("PROBE_ROLE_NAME", "probe_role_name"),
    )  # fmt: skip
    mapping_max_concurrency: int | None = Field(
        default=None, ge=2, le=1_000, description="The event source mapping's configured MaximumConcurrency, "
        "restored once a dependency is back.",
        validation_alias=AliasChoices("MAPPING_MAX_CONCURRENCY", "mapping_max_concurrency"),
    )  # fmt: skip
    function_name: str | None = Field(
        default=None, description="Lambda's own AWS_LAMBDA_FUNCTION_NAME: the breakers find the function's mapping.",
        validation_alias=AliasChoices("AWS_LAMBDA_FUNCTION_NAME", "function_name"),
    )  # fmt: skip

    def _cool_down_cap_covers_base(self) -> None:
        if self.breaker_cool_down_seconds > self.breaker_cool_down_cap_seconds:
            raise ValueError(
                f"BREAKER_COOL_DOWN_SECONDS ({self.breaker_cool_down_seconds:g}) must be <= "
                f"BREAKER_COOL_DOWN_CAP_SECONDS ({self.breaker_cool_down_cap_seconds:g})"
            )


class EndpointSettings:
    """Local runs only: where the emulated AWS services answer."""

    aws_endpoint_url: str | None = Field(
        default=None,
        description="Only for local runs: botocore's own variable, pointing every client at the emulated services.",
        validation_alias=AliasChoices("AWS_ENDPOINT_URL", "aws_endpoint_url"),
    )


# The function's settings, each concern's fields from its own class (above), read as one.
class ConsumerSettings(
    EndpointSettings,
    DependencySettings,
    TracingSettings,
    FollowUpSettings,
    PayloadSettings,
    SecretSettings,
    IdempotencySettings,
    RetrySettings,
    RecordSettings,
    PowertoolsSettings,
    BaseModel,
):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    @field_validator("secret_names", "followup_queues", "dependency_rate_limits", mode="before")
    @classmethod
    def _json_mapping(cls, value: object) -> object:
        # The environment carries the mapping as a JSON object.
        return json.loads(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _rules_across_fields(self) -> ConsumerSettings:
        # Each concern's rule, in this order: the first one broken is the error.
        self._cool_down_cap_covers_base()
        self._backoff_cap_covers_base()
        return self

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable that sets ``field``."""
        alias = cls.model_fields[field].validation_alias
        assert isinstance(alias, AliasChoices)
        first = alias.choices[0]
        assert isinstance(first, str)
        return first

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ConsumerSettings:
        """Read and validate the environment (names are case-sensitive), with one readable error."""
        try:
            return cls.model_validate(dict(os.environ if environ is None else environ))
        except ValidationError as exc:
            # Each error's location is the environment variable that was read.
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
                for error in exc.errors(include_url=False)
            )
            raise SettingsError(f"invalid consumer settings: {problems}") from None


class OrdersApiSettings(BaseModel):
    """What the ``order.placed`` sample handler needs: its own concern, read apart from the function's wiring."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    orders_api_url: str | None = Field(
        default=None,
        pattern=r"^https?://\S+$",
        description="Where the order.placed handler POSTs each order; unset quarantines order.placed as non_retryable.",
        validation_alias=AliasChoices("ORDERS_API_URL", "orders_api_url"),
    )

    @classmethod
    def env_name(cls) -> str:
        """The environment variable that sets the orders API's URL (the stack writes it)."""
        alias = cls.model_fields["orders_api_url"].validation_alias
        assert isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str)
        return alias.choices[0]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OrdersApiSettings:
        try:
            return cls.model_validate(dict(os.environ if environ is None else environ))
        except ValidationError as exc:
            raise SettingsError(f"invalid orders API settings: {exc.errors(include_url=False)[0]['msg']}") from None


@cache
def get_orders_api_settings() -> OrdersApiSettings:
    """The orders API's settings of this execution environment, read on first use."""
    return OrdersApiSettings.from_env()


@cache
def get_settings() -> ConsumerSettings:
    """The settings of this execution environment, read on first use."""
    return ConsumerSettings.from_env()
