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
from pyfaas.model import LATEST, FunctionConfig, FunctionNotFound, FunctionRecord
from pyfaas.model.versions import check_qualifier

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


# --- provisioned concurrency: of $LATEST (a function setting) or of an alias ---------------


def _provisioned_target(call: LambdaCall) -> tuple[str, str | None]:
    """(function, alias): the alias is None for $LATEST. Raises
    InvalidParameterValueException for no qualifier or a version number."""
    qualifier = call.query("Qualifier")
    if qualifier is None:
        raise invalid_parameter(
            "Qualifier is required: an alias, or $LATEST", code="invalid_qualifier"
        )
    ref = call.function()
    if qualifier == LATEST:
        return ref.latest(qualifier), None
    if isinstance(check_qualifier(qualifier), int):
        raise invalid_parameter(
            f"Qualifier {qualifier!r} is a version: pyfaas keeps provisioned workers for "
            f"aliases (split by their weights) and $LATEST; create an alias for version "
            f"{qualifier} (CreateAlias) and configure that",
            code="provisioned_on_version",
        )
    return ref.name, qualifier


def _provisioned(wanted: int, updated_at: float) -> dict[str, Any]:
    return {
        "RequestedProvisionedConcurrentExecutions": wanted,
        # The scaler starts the workers before the configuration call returns.
        "AvailableProvisionedConcurrentExecutions": wanted,
        "AllocatedProvisionedConcurrentExecutions": wanted,
        "Status": "READY",
        "LastModified": last_modified(updated_at),
    }


def _no_provisioned(what: str) -> LambdaApiError:
    return LambdaApiError(
        404,
        "ProvisionedConcurrencyConfigNotFoundException",
        f"{what} has no provisioned concurrency configuration",
        code="provisioned_concurrency_not_found",
    )


async def put_provisioned_concurrency(call: LambdaCall) -> Response:
    """PutProvisionedConcurrencyConfig: keep that many workers started and initialized (for
    an alias: split between its versions by their weights)."""
    wanted = _integer(call.json(), "ProvisionedConcurrentExecutions")
    if wanted is not None and wanted < 1:
        raise invalid_parameter(
            "ProvisionedConcurrentExecutions must be at least 1 (delete the configuration to "
            "keep no workers ready)",
            code="invalid_concurrency",
        )
    name, alias_name = _provisioned_target(call)
    if alias_name is None:
        outcome = await _configure(call, name, {"provisioned_concurrency": wanted})
        record = outcome.record
        wanted = record.config.provisioned_concurrency
        return JSONResponse(_provisioned(wanted, record.updated_at), status_code=202)
    alias = await with_lambda_names_async(
        call.versions().patch_alias(name, alias_name, {"provisioned_concurrency": wanted})
    )
    return JSONResponse(
        _provisioned(alias.provisioned_concurrency, alias.updated_at), status_code=202
    )


async def get_provisioned_concurrency(call: LambdaCall) -> Response:
    """GetProvisionedConcurrencyConfig; with List=ALL, ListProvisionedConcurrencyConfigs
    ($LATEST's and every alias's)."""
    if call.query("List") == "ALL":
        name = call.function().latest()
        record = await call.services.functions.get(name)
        arn = call.services.functions.arn_of(record.name)
        targets = [("$LATEST", record.config.provisioned_concurrency, record.updated_at)]
        for alias in await call.versions().list_aliases(name):
            targets.append((alias.name, alias.provisioned_concurrency, alias.updated_at))
        found = [
            {"FunctionArn": f"{arn}:{qualifier}", **_provisioned(wanted, updated_at)}
            for qualifier, wanted, updated_at in targets
            if wanted
        ]
        return JSONResponse({"ProvisionedConcurrencyConfigs": found})
    name, alias_name = _provisioned_target(call)
    if alias_name is None:
        record = await call.services.functions.get(name)
        if not record.config.provisioned_concurrency:
            raise _no_provisioned(f"function {name!r}")
        wanted = record.config.provisioned_concurrency
        return JSONResponse(_provisioned(wanted, record.updated_at))
    alias = await call.versions().get_alias(name, alias_name)
    if not alias.provisioned_concurrency:
        raise _no_provisioned(f"alias {alias_name!r} of {name!r}")
    return JSONResponse(_provisioned(alias.provisioned_concurrency, alias.updated_at))


async def delete_provisioned_concurrency(call: LambdaCall) -> Response:
    """DeleteProvisionedConcurrencyConfig: idle workers scale to zero again."""
    name, alias_name = _provisioned_target(call)
    if alias_name is None:
        await _configure(call, name, {"provisioned_concurrency": 0})
        return Response(status_code=204)
    versions = call.versions()
    if not (await versions.get_alias(name, alias_name)).provisioned_concurrency:
        raise _no_provisioned(f"alias {alias_name!r} of {name!r}")
    await versions.patch_alias(name, alias_name, {"provisioned_concurrency": 0})
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
