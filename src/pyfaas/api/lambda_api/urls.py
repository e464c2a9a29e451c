"""Create/Get/Update/Delete/ListFunctionUrlConfig, served by pyfaas's function URLs at
``/fn/{name}/``. ``AuthType`` ``AWS_IAM`` is pyfaas's ``TOKEN``: callers send the server's
API token as a bearer token (pyfaas does not sign function URL calls)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from pyfaas.api.lambda_api.errors import invalid_parameter
from pyfaas.api.lambda_api.naming import last_modified
from pyfaas.api.lambda_api.operation import LambdaCall
from pyfaas.api.responses import JSONResponse
from pyfaas.model.urls import AUTH_TOKEN, FunctionUrlConfig

_AUTH_TYPES = {"NONE": "NONE", "AWS_IAM": AUTH_TOKEN}
_CORS_FIELDS = {
    "AllowOrigins": "allow_origins",
    "AllowMethods": "allow_methods",
    "AllowHeaders": "allow_headers",
    "ExposeHeaders": "expose_headers",
    "MaxAge": "max_age",
    "AllowCredentials": "allow_credentials",
}


def _fields(body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if "AuthType" in body or creating:
        auth = body.get("AuthType")
        if auth not in _AUTH_TYPES:
            raise invalid_parameter(
                f"AuthType must be NONE or AWS_IAM (pyfaas: the server's API token), got {auth!r}",
                code="invalid_auth_type",
            )
        fields["auth_type"] = _AUTH_TYPES[auth]
    if "Cors" in body:
        cors = body["Cors"]
        if cors is not None and not isinstance(cors, dict):
            raise invalid_parameter("Cors must be an object", code="invalid_cors")
        unknown = sorted(set(cors or {}) - set(_CORS_FIELDS))
        if unknown:
            raise invalid_parameter(
                f"unknown Cors field(s): {', '.join(unknown)}", code="invalid_cors"
            )
        fields["cors"] = None if cors is None else {_CORS_FIELDS[k]: v for k, v in cors.items()}
    if body.get("InvokeMode", "BUFFERED") != "BUFFERED":
        raise invalid_parameter(
            "InvokeMode must be BUFFERED: pyfaas answers in one piece (no response streaming)",
            code="invalid_invoke_mode",
        )
    return fields


def _render(call: LambdaCall, config: FunctionUrlConfig) -> dict[str, Any]:
    base = str(call.request.base_url).rstrip("/")
    arn = call.services.functions.arn_of(config.function)
    if config.qualifier is not None:
        arn = f"{arn}:{config.qualifier}"
    out: dict[str, Any] = {
        "FunctionUrl": f"{base}{config.path}/",
        "FunctionArn": arn,
        "AuthType": "AWS_IAM" if config.auth_type == AUTH_TOKEN else "NONE",
        "CreationTime": last_modified(config.created_at),
        "LastModifiedTime": last_modified(config.updated_at),
        "InvokeMode": "BUFFERED",
    }
    if config.cors is not None:
        cors = config.cors
        out["Cors"] = {
            "AllowOrigins": list(cors.allow_origins),
            "AllowMethods": list(cors.allow_methods),
            "AllowHeaders": list(cors.allow_headers),
            "ExposeHeaders": list(cors.expose_headers),
            "AllowCredentials": cors.allow_credentials,
        }
        if cors.max_age is not None:
            out["Cors"]["MaxAge"] = cors.max_age
    return out


def _qualifier(call: LambdaCall) -> dict[str, Any]:
    qualifier = call.query("Qualifier") or call.function().qualifier
    return {} if qualifier is None else {"qualifier": qualifier}


async def create_url_config(call: LambdaCall) -> Response:
    """CreateFunctionUrlConfig."""
    fields = _fields(call.json(), creating=True) | _qualifier(call)
    name = call.function().name
    config = await call.services.urls.create(name, fields)
    out = _render(call, config)
    del out["LastModifiedTime"]
    return JSONResponse(out, status_code=201)


async def get_url_config(call: LambdaCall) -> Response:
    """GetFunctionUrlConfig."""
    name = call.function().name
    config = await call.services.urls.get(name, _qualifier(call).get("qualifier"))
    return JSONResponse(_render(call, config))


async def update_url_config(call: LambdaCall) -> Response:
    """UpdateFunctionUrlConfig: AuthType and/or Cors."""
    fields = _fields(call.json(), creating=False) | _qualifier(call)
    name = call.function().name
    config = await call.services.urls.update(name, fields)
    return JSONResponse(_render(call, config))


async def delete_url_config(call: LambdaCall) -> Response:
    """DeleteFunctionUrlConfig."""
    name = call.function().name
    await call.services.urls.delete(name, _qualifier(call).get("qualifier"))
    return Response(status_code=204)


async def list_url_configs(call: LambdaCall) -> Response:
    """ListFunctionUrlConfigs: the function's URLs, the unqualified one first, then those of
    its versions and aliases."""
    configs = await call.services.urls.list_configs(call.function().name)
    return JSONResponse({"FunctionUrlConfigs": [_render(call, c) for c in configs]})
