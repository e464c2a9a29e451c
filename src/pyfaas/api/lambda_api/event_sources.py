"""Create/List/Get/Update/DeleteEventSourceMapping for pyfaas's brokers.

A pyfaas event source is named by an ARN of its own scheme, ``arn:pyfaas:TYPE:::BROKER_URL``
(TYPE ``redis``, ``rabbitmq`` or ``nats``; e.g. ``arn:pyfaas:redis:::redis://127.0.0.1:6379/0``),
and what is read by ``Topics`` (a Redis or JetStream stream) or ``Queues`` (a RabbitMQ queue),
as Lambda names the topics of a Kafka broker and the queues of an Amazon MQ one.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from pyfaas.api.lambda_api.errors import invalid_parameter, not_found
from pyfaas.api.lambda_api.functions import page_size
from pyfaas.api.lambda_api.naming import (
    destination_name,
    parse_function_ref,
    with_lambda_names_async,
)
from pyfaas.api.lambda_api.operation import LambdaCall
from pyfaas.api.responses import JSONResponse
from pyfaas.model.sources import SOURCE_TYPES, redact_url

ARN_PREFIX = "arn:pyfaas:"
_SETTINGS = {
    "BatchSize": "batch_size",
    "MaximumBatchingWindowInSeconds": "maximum_batching_window_s",
    "Enabled": "enabled",
    "MaximumRetryAttempts": "maximum_retry_attempts",
    "FunctionResponseTypes": "function_response_types",
}
_CREATE_ONLY = {"EventSourceArn", "StartingPosition", "Topics", "Queues"}


def parse_source_arn(arn: object) -> tuple[str, str]:
    """(broker type, broker URL) of a pyfaas source ARN. Raises InvalidParameterValue."""
    if isinstance(arn, str) and arn.startswith(ARN_PREFIX):
        parts = arn.split(":", 5)
        if len(parts) == 6 and parts[2] in SOURCE_TYPES and parts[5]:
            return parts[2], parts[5]
    raise invalid_parameter(
        f"EventSourceArn {arn!r} is not a pyfaas source: use arn:pyfaas:TYPE:::BROKER_URL with "
        f"TYPE one of {', '.join(SOURCE_TYPES)} (e.g. arn:pyfaas:redis:::redis://127.0.0.1:6379/0)",
        code="invalid_source_arn",
    )


def _changes(body: dict[str, Any]) -> dict[str, Any]:
    fields = {_SETTINGS[k]: v for k, v in body.items() if k in _SETTINGS}
    if "FunctionName" in body:
        name = body["FunctionName"]
        if not isinstance(name, str):
            raise invalid_parameter("FunctionName must be a function name or ARN")
        fields["function"] = parse_function_ref(name).latest()
    destinations = body.get("DestinationConfig")
    if destinations is not None:
        failure = destinations.get("OnFailure") if isinstance(destinations, dict) else None
        target = failure.get("Destination") if isinstance(failure, dict) else None
        fields["on_failure"] = (
            destination_name(target, "DestinationConfig.OnFailure.Destination") if target else None
        )
    return fields


def _one(body: dict[str, Any], key: str, what: str) -> str:
    value = body.get(key)
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], str):
        raise invalid_parameter(
            f"{key} must list exactly one {what} to read", code="invalid_source_name"
        )
    return value[0]


def _render(call: LambdaCall, mapping: dict[str, Any]) -> dict[str, Any]:
    arn_of = call.services.functions.arn_of
    kind = mapping["type"]
    out: dict[str, Any] = {
        "UUID": mapping["uuid"],
        "EventSourceArn": f"{ARN_PREFIX}{kind}:::{mapping['url']}",
        "FunctionArn": arn_of(mapping["function"]),
        "BatchSize": mapping["batch_size"],
        "MaximumBatchingWindowInSeconds": round(mapping["maximum_batching_window_s"]),
        "MaximumRetryAttempts": mapping["maximum_retry_attempts"],
        "FunctionResponseTypes": mapping["function_response_types"],
        "State": mapping["state"],
        "StateTransitionReason": "USER_INITIATED",
        "LastModified": mapping["updated_at"],
        "LastProcessingResult": _processing_result(mapping),
        "DestinationConfig": {
            "OnFailure": (
                {"Destination": arn_of(mapping["on_failure"])} if mapping["on_failure"] else {}
            )
        },
    }
    if kind == "rabbitmq":
        out["Queues"] = [mapping["queue"]]
    else:
        out["Topics"] = [mapping["stream"]]
        out["StartingPosition"] = mapping["starting_position"]
    return out


def _processing_result(mapping: dict[str, Any]) -> str:
    if mapping.get("health") == "unhealthy":
        return f"PROBLEM: {mapping.get('last_error') or 'the broker is unreachable'}"
    return str(mapping.get("last_processing_result") or "No records processed")


async def create_event_source_mapping(call: LambdaCall) -> Response:
    """CreateEventSourceMapping: checks the broker once, then polls it."""
    body = call.json()
    kind, url = parse_source_arn(body.get("EventSourceArn"))
    if "FunctionName" not in body:
        raise invalid_parameter("FunctionName is required", code="invalid_name")
    fields: dict[str, Any] = {"type": kind, "url": url, **_changes(body)}
    if kind == "rabbitmq":
        fields["queue"] = _one(body, "Queues", "RabbitMQ queue")
    else:
        fields["stream"] = _one(body, "Topics", f"{kind} stream")
    if "StartingPosition" in body:
        fields["starting_position"] = body["StartingPosition"]
    if fields.get("on_failure") is None:
        fields.pop("on_failure", None)
    created = await with_lambda_names_async(call.services.sources.create(fields))
    return JSONResponse(_render(call, created), status_code=202)


async def get_event_source_mapping(call: LambdaCall) -> Response:
    """GetEventSourceMapping."""
    found = await call.services.sources.get(_uuid(call))
    return JSONResponse(_render(call, found))


async def update_event_source_mapping(call: LambdaCall) -> Response:
    """UpdateEventSourceMapping: FunctionName, Enabled, BatchSize, the batching window,
    retries, the failure destination and FunctionResponseTypes (the source stays)."""
    body = call.json()
    fixed = sorted(_CREATE_ONLY & set(body))
    if fixed:
        raise invalid_parameter(
            f"{', '.join(fixed)} cannot change; delete the mapping and create another",
            code="unknown_field",
        )
    updated = await with_lambda_names_async(
        call.services.sources.update(_uuid(call), _changes(body))
    )
    return JSONResponse(_render(call, updated), status_code=202)


async def delete_event_source_mapping(call: LambdaCall) -> Response:
    """DeleteEventSourceMapping: stops polling at once."""
    deleted = await call.services.sources.delete(_uuid(call))
    return JSONResponse(_render(call, deleted), status_code=202)


async def list_event_source_mappings(call: LambdaCall) -> Response:
    """ListEventSourceMappings, by FunctionName and/or EventSourceArn, MaxItems after Marker."""
    name = call.query("FunctionName")
    function = parse_function_ref(name).latest() if name else None
    found = [_render(call, m) for m in await call.services.sources.list(function)]
    arn = call.query("EventSourceArn")
    if arn:
        kind, url = parse_source_arn(arn)
        wanted = f"{ARN_PREFIX}{kind}:::{redact_url(url)}"
        found = [m for m in found if m["EventSourceArn"] == wanted]
    limit = page_size(call.query("MaxItems"))
    start = 0
    marker = call.query("Marker")
    if marker:
        ids = [m["UUID"] for m in found]
        if marker not in ids:
            raise invalid_parameter(
                f"Marker {marker!r} is not from this listing", code="invalid_marker"
            )
        start = ids.index(marker) + 1
    page = found[start : start + limit]
    out: dict[str, Any] = {"EventSourceMappings": page}
    if start + limit < len(found):
        out["NextMarker"] = page[-1]["UUID"]
    return JSONResponse(out)


def _uuid(call: LambdaCall) -> str:
    value: str = call.request.path_params["UUID"]
    if not value:
        raise not_found("no event source mapping has an empty UUID")
    return value
