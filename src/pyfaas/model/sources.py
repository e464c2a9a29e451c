"""Event source mappings: a broker's stream or queue feeding a function in batches."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from pyfaas.model.errors import InvalidRequest
from pyfaas.model.function import NAME_PATTERN

# type -> (URL schemes, the field that names what is read, default batch size). Defaults
# follow Lambda's nearest source: SQS (10) for queues, Kinesis (100) for Redis Streams.
SOURCE_TYPES: dict[str, tuple[tuple[str, ...], str, int]] = {
    "redis": (("redis", "rediss"), "stream", 100),
    "rabbitmq": (("amqp", "amqps"), "queue", 10),
    "nats": (("nats", "tls"), "stream", 10),
}
STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST")
REPORT_BATCH_ITEM_FAILURES = "ReportBatchItemFailures"
MAX_BATCH_SIZE = 10_000
MAX_BATCHING_WINDOW_S = 300
MAX_RETRIES = 10_000  # -1: retry until the batch succeeds (Lambda's stream default)
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9_.:/*>-]{1,255}$")
_CONSUMER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# What a create request may hold.
CREATE_FIELDS = (
    "function",
    "type",
    "url",
    "stream",
    "queue",
    "subject",
    "consumer_group",
    "batch_size",
    "maximum_batching_window_s",
    "enabled",
    "maximum_retry_attempts",
    "on_failure",
    "function_response_types",
    "starting_position",
)
# What PATCH may change; the broker, its URL and what is read stay (as on Lambda).
MUTABLE_FIELDS = (
    "function",
    "batch_size",
    "maximum_batching_window_s",
    "enabled",
    "maximum_retry_attempts",
    "on_failure",
    "function_response_types",
)


@dataclass(frozen=True, slots=True)
class EventSourceMapping:
    """One mapping, as stored. ``source`` is the Redis stream, RabbitMQ queue or JetStream
    stream; ``subject`` filters a JetStream stream; ``consumer_group`` is the Redis consumer
    group or the JetStream durable consumer (RabbitMQ has none). A batch that still fails
    after ``maximum_retry_attempts`` retries goes to the dead-letter queue, and a record of
    it to the ``on_failure`` function if one is set."""

    uuid: str
    function: str
    type: str
    url: str
    source: str
    subject: str | None
    consumer_group: str | None
    batch_size: int
    maximum_batching_window_s: float
    enabled: bool
    maximum_retry_attempts: int
    on_failure: str | None
    report_batch_item_failures: bool
    starting_position: str
    created_at: float
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["source"], out["report_batch_item_failures"]
        out[SOURCE_TYPES[self.type][1]] = self.source
        out["function_response_types"] = (
            [REPORT_BATCH_ITEM_FAILURES] if self.report_batch_item_failures else []
        )
        out["url"] = redact_url(self.url)
        return out


def redact_url(url: str) -> str:
    """``url`` without its password (it is kept in the store, never shown)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def parse_mapping(body: dict[str, Any], *, uuid: str, now: float) -> EventSourceMapping:
    """A new mapping from a create request (Lambda's CreateEventSourceMapping, snake_case).

    Raises InvalidRequest with the code of the first bad field.
    """
    _reject_unknown(body, CREATE_FIELDS)
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in SOURCE_TYPES:
        raise InvalidRequest(
            f"type must be one of {', '.join(SOURCE_TYPES)}, got {kind!r}",
            code="invalid_source_type",
        )
    schemes, name_field, default_batch = SOURCE_TYPES[kind]
    url = body.get("url")
    if not isinstance(url, str) or not _host(url, schemes):
        raise InvalidRequest(
            f"url must be a {kind} URL ({' or '.join(s + '://host:port' for s in schemes)}), "
            f"got {url!r}",
            code="invalid_source_url",
        )
    other = "queue" if name_field == "stream" else "stream"
    if body.get(other) is not None:
        raise InvalidRequest(f"a {kind} source reads a {name_field}, not a {other}")
    source = body.get(name_field)
    if not isinstance(source, str) or not _SOURCE_NAME.match(source):
        raise InvalidRequest(
            f"{name_field} must name the {kind} {name_field} to read (1-255 of "
            "A-Z a-z 0-9 _ . : / - )",
            code="invalid_source_name",
        )
    subject = body.get("subject")
    if subject is not None and (kind != "nats" or not isinstance(subject, str) or not subject):
        raise InvalidRequest(
            "subject filters a NATS JetStream stream: a non-empty string, nats only",
            code="invalid_source_name",
        )
    group = body.get("consumer_group")
    if kind == "rabbitmq" and group is not None:
        raise InvalidRequest("a RabbitMQ queue has no consumer group", code="invalid_source_name")
    if group is None and kind != "rabbitmq":
        group = f"pyfaas-{uuid[:8]}"
    if group is not None and (not isinstance(group, str) or not _CONSUMER_NAME.match(group)):
        raise InvalidRequest(
            "consumer_group must be 1-64 of A-Z a-z 0-9 _ -", code="invalid_source_name"
        )
    position = body.get("starting_position", "TRIM_HORIZON")
    if position not in STARTING_POSITIONS or (kind == "rabbitmq" and "starting_position" in body):
        raise InvalidRequest(
            f"starting_position is one of {', '.join(STARTING_POSITIONS)} (streams only)",
            code="invalid_starting_position",
        )
    mapping = EventSourceMapping(
        uuid=uuid,
        function="",
        type=kind,
        url=url,
        source=source,
        subject=subject,
        consumer_group=group,
        batch_size=default_batch,
        maximum_batching_window_s=0.0,
        enabled=True,
        maximum_retry_attempts=2,
        on_failure=None,
        report_batch_item_failures=False,
        starting_position=position,
        created_at=now,
        updated_at=now,
    )
    if "function" not in body:
        raise InvalidRequest("function is required: the function that receives the batches")
    settings = {k: v for k, v in body.items() if k in MUTABLE_FIELDS}
    return apply_changes(mapping, settings, now=now)


def apply_changes(
    mapping: EventSourceMapping, changes: dict[str, Any], *, now: float
) -> EventSourceMapping:
    """``mapping`` with ``changes`` (fields of MUTABLE_FIELDS) applied and checked.

    Raises InvalidRequest (unknown_field, invalid_batch_size, invalid_batching_window,
    invalid_retries, invalid_destination, invalid_function_response_types, invalid_name).
    """
    _reject_unknown(changes, MUTABLE_FIELDS)
    values: dict[str, Any] = {}
    if "function" in changes:
        values["function"] = _function_name(changes["function"], "function")
    if "batch_size" in changes:
        values["batch_size"] = _int_in(
            changes["batch_size"], 1, MAX_BATCH_SIZE, "batch_size", "invalid_batch_size"
        )
    if "maximum_batching_window_s" in changes:
        window = changes["maximum_batching_window_s"]
        if isinstance(window, bool) or not isinstance(window, int | float):
            window = -1
        if not 0 <= window <= MAX_BATCHING_WINDOW_S:
            raise InvalidRequest(
                f"maximum_batching_window_s must be 0-{MAX_BATCHING_WINDOW_S} seconds",
                code="invalid_batching_window",
            )
        values["maximum_batching_window_s"] = float(window)
    if "enabled" in changes:
        if not isinstance(changes["enabled"], bool):
            raise InvalidRequest("enabled must be true or false", code="invalid_type")
        values["enabled"] = changes["enabled"]
    if "maximum_retry_attempts" in changes:
        values["maximum_retry_attempts"] = _int_in(
            changes["maximum_retry_attempts"],
            -1,
            MAX_RETRIES,
            "maximum_retry_attempts (-1: until the batch succeeds)",
            "invalid_retries",
        )
    if "on_failure" in changes:
        target = changes["on_failure"]
        values["on_failure"] = None if target is None else _function_name(target, "on_failure")
    if "function_response_types" in changes:
        types = changes["function_response_types"]
        if not isinstance(types, list) or any(t != REPORT_BATCH_ITEM_FAILURES for t in types):
            raise InvalidRequest(
                f'function_response_types is [] or ["{REPORT_BATCH_ITEM_FAILURES}"]',
                code="invalid_function_response_types",
            )
        values["report_batch_item_failures"] = bool(types)
    changed = replace(mapping, **values)
    if changed.on_failure is not None and changed.on_failure == changed.function:
        raise InvalidRequest(
            "on_failure must be another function than the one the mapping feeds",
            code="invalid_destination",
        )
    return replace(changed, updated_at=now) if changed != mapping else mapping


def _function_name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        code = "invalid_destination" if field == "on_failure" else "invalid_name"
        raise InvalidRequest(f"{field} must be a function name, got {value!r}", code=code)
    return value


def _reject_unknown(body: dict[str, Any], known: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise InvalidRequest(
            f"unknown field(s): {', '.join(unknown)}; known: {', '.join(known)}",
            code="unknown_field",
        )


def _int_in(value: Any, low: int, high: int, what: str, code: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRequest(
            f"{what} must be an integer from {low} to {high}, got {value!r}", code=code
        )
    return value


def _host(url: str, schemes: tuple[str, ...]) -> bool:
    """Whether ``url`` has one of ``schemes``, a host, and a numeric port if any."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return False
    return parts.scheme in schemes and bool(parts.hostname)
