"""Reserved and provisioned concurrency, and the event invoke config (async retries, event
age, destinations): all of them fields of the function's configuration in pyfaas."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from pyfaas.api.lambda_api.errors import LambdaApiError, invalid_parameter
from pyfaas.api.lambda_api.naming import (
    destination_name,
    last_modified,
    with_lambda_names_async,
)
from pyfaas.api.lambda_api.operation import LambdaCall
from pyfaas.api.responses import JSONResponse
from pyfaas.control.functions import DeployOutcome
from pyfaas.model import FunctionConfig, FunctionNotFound, FunctionRecord

_DEFAULTS = FunctionConfig(name="defaults")
_ASYNC_DEFAULTS: dict[str, Any] = {
    "maximum_retry_attempts": _DEFAULTS.maximum_retry_attempts,
    "maximum_event_age_s": _DEFAULTS.maximum_event_age_s,
    "on_success": None,
    "on_failure": None,
}


async def _configure(call: LambdaCall, name: str, changes: dict[str, Any]) -> DeployOutcome:
    """Change configuration fields of ``name``; errors name the fields as Lambda does."""
    return await with_lambda_names_async(call.services.functions.update_config(name, changes))


def _integer(body: dict[str, Any], key: str, *, required: bool = True) -> int | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid_parameter(f"{key} must be a whole number", code="invalid_type")
    return value


# --- reserved concurrency --------------------------------------------------------------------


async def put_function_concurrency(call: LambdaCall) -> Response:
    """PutFunctionConcurrency: reserve ``ReservedConcurrentExecutions`` (0 stops all calls)."""
    reserved = _integer(call.json(), "ReservedConcurrentExecutions")
    name = call.function().latest()
    await _configure(call, name, {"reserved_concurrency": reserved})
    return JSONResponse({"ReservedConcurrentExecutions": reserved})


async def get_function_concurrency(call: LambdaCall) -> Response:
    """GetFunctionConcurrency: {} when the function has no reservation."""
    record = await call.services.functions.get(call.function().latest())
    reserved = record.config.reserved_concurrency
    return JSONResponse({} if reserved is None else {"ReservedConcurrentExecutions": reserved})


async def delete_function_concurrency(call: LambdaCall) -> Response:
    """DeleteFunctionConcurrency: back to the server's shared pool."""
    name = call.function().latest()
    await _configure(call, name, {"reserved_concurrency": None})
    return Response(status_code=204)


# --- provisioned concurrency (on $LATEST: pyfaas has no published versions yet) -------------


def _provisioned_target(call: LambdaCall) -> str:
    qualifier = call.query("Qualifier")
    if qualifier is None:
        raise invalid_parameter(
            "Qualifier is required: $LATEST (pyfaas has no published versions or aliases yet)",
            code="invalid_qualifier",
        )
    return call.function().latest(qualifier)


def _provisioned(record: FunctionRecord) -> dict[str, Any]:
    wanted = record.config.provisioned_concurrency
    return {
        "RequestedProvisionedConcurrentExecutions": wanted,
        # The scaler starts the workers before the configuration call returns.
        "AvailableProvisionedConcurrentExecutions": wanted,
        "AllocatedProvisionedConcurrentExecutions": wanted,
        "Status": "READY",
        "LastModified": last_modified(record.updated_at),
    }


async def put_provisioned_concurrency(call: LambdaCall) -> Response:
    """PutProvisionedConcurrencyConfig: keep that many workers started and initialized."""
    wanted = _integer(call.json(), "ProvisionedConcurrentExecutions")
    if wanted is not None and wanted < 1:
        raise invalid_parameter(
            "ProvisionedConcurrentExecutions must be at least 1 (delete the configuration to "
            "keep no workers ready)",
            code="invalid_concurrency",
        )
    name = _provisioned_target(call)
    outcome = await _configure(call, name, {"provisioned_concurrency": wanted})
    return JSONResponse(_provisioned(outcome.record), status_code=202)


async def get_provisioned_concurrency(call: LambdaCall) -> Response:
    """GetProvisionedConcurrencyConfig; with List=ALL, ListProvisionedConcurrencyConfigs."""
    if call.query("List") == "ALL":
        record = await call.services.functions.get(call.function().latest())
        found = []
        if record.config.provisioned_concurrency:
            arn = call.services.functions.arn_of(record.name)
            found.append({"FunctionArn": f"{arn}:$LATEST", **_provisioned(record)})
        return JSONResponse({"ProvisionedConcurrencyConfigs": found})
    record = await call.services.functions.get(_provisioned_target(call))
    if not record.config.provisioned_concurrency:
        raise LambdaApiError(
            404,
            "ProvisionedConcurrencyConfigNotFoundException",
            f"function {record.name!r} has no provisioned concurrency configuration",
            code="provisioned_concurrency_not_found",
        )
    return JSONResponse(_provisioned(record))


async def delete_provisioned_concurrency(call: LambdaCall) -> Response:
    """DeleteProvisionedConcurrencyConfig: idle workers scale to zero again."""
    name = _provisioned_target(call)
    await _configure(call, name, {"provisioned_concurrency": 0})
    return Response(status_code=204)


# --- event invoke config -------------------------------------------------------------------


async def _event_invoke_config(call: LambdaCall, record: FunctionRecord) -> dict[str, Any]:
    cfg = record.config
    functions = call.services.functions
    destinations: dict[str, Any] = {}
    for key, target in (("OnSuccess", cfg.on_success), ("OnFailure", cfg.on_failure)):
        destinations[key] = {"Destination": functions.arn_of(target)} if target else {}
    return {
        "LastModified": record.updated_at,
        "FunctionArn": f"{functions.arn_of(record.name)}:$LATEST",
        "MaximumRetryAttempts": cfg.maximum_retry_attempts,
        "MaximumEventAgeInSeconds": cfg.maximum_event_age_s,
        "DestinationConfig": destinations,
    }


async def _change_event_invoke_config(call: LambdaCall, *, replace: bool) -> Response:
    body = call.json()
    name = call.function().latest(call.query("Qualifier"))
    changes: dict[str, Any] = {}
    if replace:
        changes = dict(_ASYNC_DEFAULTS)
    retries = _integer(body, "MaximumRetryAttempts", required=False)
    if retries is not None:
        changes["maximum_retry_attempts"] = retries
    age = _integer(body, "MaximumEventAgeInSeconds", required=False)
    if age is not None:
        changes["maximum_event_age_s"] = age
    destinations = body.get("DestinationConfig")
    if destinations is not None:
        if not isinstance(destinations, dict):
            raise invalid_parameter(
                "DestinationConfig must be {OnSuccess: {Destination: ARN}, OnFailure: {...}}",
                code="invalid_destination",
            )
        for key, field in (("OnSuccess", "on_success"), ("OnFailure", "on_failure")):
            if key in destinations:
                changes[field] = await _destination(call, destinations[key], key)
    outcome = await _configure(call, name, changes)
    return JSONResponse(await _event_invoke_config(call, outcome.record))


async def _destination(call: LambdaCall, value: Any, key: str) -> str | None:
    if not isinstance(value, dict) or not value.get("Destination"):
        return None
    target = destination_name(value["Destination"], f"DestinationConfig.{key}.Destination")
    try:
        await call.services.functions.get(target)
    except FunctionNotFound:
        raise invalid_parameter(
            f"DestinationConfig.{key} names function {target!r}, which does not exist",
            code="invalid_destination",
        ) from None
    return target


async def put_event_invoke_config(call: LambdaCall) -> Response:
    """PutFunctionEventInvokeConfig: replaces the whole configuration (unset fields go back
    to their defaults: 2 retries, 6 hours, no destinations)."""
    return await _change_event_invoke_config(call, replace=True)


async def update_event_invoke_config(call: LambdaCall) -> Response:
    """UpdateFunctionEventInvokeConfig: changes only the fields given."""
    return await _change_event_invoke_config(call, replace=False)


async def get_event_invoke_config(call: LambdaCall) -> Response:
    """GetFunctionEventInvokeConfig (every pyfaas function has one: the defaults at least)."""
    name = call.function().latest(call.query("Qualifier"))
    record = await call.services.functions.get(name)
    return JSONResponse(await _event_invoke_config(call, record))


async def list_event_invoke_configs(call: LambdaCall) -> Response:
    """ListFunctionEventInvokeConfigs: the one of $LATEST."""
    record = await call.services.functions.get(call.function().latest())
    return JSONResponse({"FunctionEventInvokeConfigs": [await _event_invoke_config(call, record)]})


async def delete_event_invoke_config(call: LambdaCall) -> Response:
    """DeleteFunctionEventInvokeConfig: back to the defaults."""
    name = call.function().latest(call.query("Qualifier"))
    await _configure(call, name, _ASYNC_DEFAULTS)
    return Response(status_code=204)
