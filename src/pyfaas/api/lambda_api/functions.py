"""CreateFunction, GetFunction, GetFunctionConfiguration, ListFunctions, UpdateFunctionCode,
UpdateFunctionConfiguration, DeleteFunction."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import os
import platform
import tempfile
import uuid
from pathlib import Path
from typing import Any

from starlette.responses import Response

from pyfaas.api.lambda_api.errors import LambdaApiError, invalid_parameter, unsupported
from pyfaas.api.lambda_api.naming import (
    last_modified,
    with_lambda_names,
    with_lambda_names_async,
)
from pyfaas.api.lambda_api.operation import LambdaCall
from pyfaas.api.responses import JSONResponse
from pyfaas.api.services import ApiServices
from pyfaas.model import (
    LATEST,
    FunctionConfig,
    FunctionRecord,
    PyfaasError,
)

DEFAULT_PAGE = 50
MAX_PAGE = 10_000
ARCHITECTURE = "arm64" if platform.machine().lower() in ("arm64", "aarch64") else "x86_64"

# Lambda's request fields -> pyfaas's configuration fields.
_CONFIG_FIELDS = {
    "Handler": "handler",
    "Runtime": "runtime",
    "MemorySize": "memory_mb",
    "Timeout": "timeout_s",
    "Description": "description",
}
# Read elsewhere, or accepted and ignored (Role, Tags, Architectures, TracingConfig,
# LoggingConfig, EphemeralStorage change nothing about how pyfaas runs a function).
_IGNORED = {
    "FunctionName",
    "Role",
    "Tags",
    "Architectures",
    "TracingConfig",
    "LoggingConfig",
    "EphemeralStorage",
    "PackageType",
    "Code",
    "Publish",
    "RevisionId",
    "Environment",
}


def max_code_body(svc: ApiServices) -> int:
    """A ZipFile travels base64 inside JSON: a third larger than the zip, plus the rest."""
    return svc.limits.zipped_code_bytes * 4 // 3 + 64 * 1024


async def create_function(call: LambdaCall) -> Response:
    """CreateFunction: a zip function from ``Code.ZipFile`` (base64)."""
    body = call.json()
    name = body.get("FunctionName")
    if not isinstance(name, str):
        raise invalid_parameter("FunctionName is required", code="invalid_name")
    _refuse_unsupported(body)
    fields: dict[str, Any] = {"name": name}
    fields.update(_config_changes(body))
    # Decoding up to ~67 MB of base64 is CPU work: off the event loop.
    zip_bytes = await asyncio.to_thread(_zip_file, body.get("Code"), "Code.ZipFile")
    config = with_lambda_names(lambda: FunctionConfig.from_dict(fields))
    svc = call.services
    path = await asyncio.to_thread(_spool, zip_bytes, svc.upload_dir)
    try:
        outcome = await with_lambda_names_async(
            svc.functions.deploy(config, path, create_only=True)
        )
    finally:
        path.unlink(missing_ok=True)
    return JSONResponse(configuration(svc, outcome.record), status_code=201)


async def get_function(call: LambdaCall) -> Response:
    """GetFunction: the configuration, where the code is, the reserved concurrency."""
    ref = call.function()
    record = await call.services.functions.get(ref.latest(call.query("Qualifier")))
    out: dict[str, Any] = {
        "Configuration": configuration(call.services, record),
        "Code": {"RepositoryType": "pyfaas"},
        "Tags": {},
    }
    if record.config.reserved_concurrency is not None:
        out["Concurrency"] = {"ReservedConcurrentExecutions": record.config.reserved_concurrency}
    return JSONResponse(out)


async def get_function_configuration(call: LambdaCall) -> Response:
    """GetFunctionConfiguration."""
    ref = call.function()
    record = await call.services.functions.get(ref.latest(call.query("Qualifier")))
    return JSONResponse(configuration(call.services, record))


async def list_functions(call: LambdaCall) -> Response:
    """ListFunctions, by name, ``MaxItems`` at a time (50 unless asked) after ``Marker``."""
    limit = page_size(call.query("MaxItems"))
    marker = call.query("Marker")
    records = await call.services.functions.list()
    if marker:
        records = [r for r in records if r.name > marker]
    page = records[:limit]
    out: dict[str, Any] = {"Functions": [configuration(call.services, r) for r in page]}
    if len(records) > limit:
        out["NextMarker"] = page[-1].name
    return JSONResponse(out)


async def update_function_code(call: LambdaCall) -> Response:
    """UpdateFunctionCode from a new ``ZipFile``; the configuration stays."""
    body = call.json()
    name = call.function().latest()
    for key in ("S3Bucket", "S3Key", "S3ObjectVersion", "ImageUri"):
        if body.get(key):
            raise invalid_parameter(
                f"{key}: pyfaas takes code as ZipFile (base64) only", code="unsupported_code"
            )
    if body.get("Publish"):
        raise _no_publish()
    if body.get("DryRun"):
        raise unsupported("UpdateFunctionCode with DryRun")
    zip_bytes = await asyncio.to_thread(_zip_file, body, "ZipFile")
    svc = call.services
    existing = await svc.functions.get(name)
    _check_revision(body, existing)
    path = await asyncio.to_thread(_spool, zip_bytes, svc.upload_dir)
    try:
        outcome = await svc.functions.deploy(existing.config, path)
    finally:
        path.unlink(missing_ok=True)
    return JSONResponse(configuration(svc, outcome.record))


async def update_function_configuration(call: LambdaCall) -> Response:
    """UpdateFunctionConfiguration: Handler, Runtime, MemorySize, Timeout, Environment,
    Description; the code stays."""
    body = call.json()
    name = call.function().latest()
    _refuse_unsupported(body)
    svc = call.services
    _check_revision(body, await svc.functions.get(name))
    changes = _config_changes(body)
    outcome = await with_lambda_names_async(svc.functions.update_config(name, changes))
    return JSONResponse(configuration(svc, outcome.record))


async def delete_function(call: LambdaCall) -> Response:
    """DeleteFunction: the function, its logs, URL, schedules and workers."""
    ref = call.function()
    qualifier = call.query("Qualifier") or ref.qualifier
    if qualifier is not None:
        raise invalid_parameter(
            f"Qualifier {qualifier!r}: pyfaas has no published versions to delete; leave the "
            "qualifier out to delete the function",
            code="invalid_qualifier",
        )
    await call.services.functions.delete(ref.name)
    return Response(status_code=204)


async def get_account_settings(call: LambdaCall) -> Response:
    """GetAccountSettings: the server's limits and what its functions use."""
    svc = call.services
    records = await svc.functions.list()
    reserved = sum(r.config.reserved_concurrency or 0 for r in records)
    limits = svc.limits
    return JSONResponse(
        {
            "AccountLimit": {
                "CodeSizeZipped": limits.zipped_code_bytes,
                "CodeSizeUnzipped": limits.unzipped_code_bytes,
                "ConcurrentExecutions": limits.max_concurrency,
                "UnreservedConcurrentExecutions": limits.max_concurrency - reserved,
            },
            "AccountUsage": {
                "TotalCodeSize": sum(r.code_size for r in records),
                "FunctionCount": len(records),
            },
        }
    )


def configuration(svc: ApiServices, record: FunctionRecord) -> dict[str, Any]:
    """A function as Lambda's FunctionConfiguration. Deploys are synchronous (the handler is
    imported before the call returns), so a function that exists is Active and its last
    update Successful: boto3's waiters return at once."""
    cfg = record.config
    return {
        "FunctionName": cfg.name,
        "FunctionArn": svc.functions.arn_of(cfg.name),
        "Runtime": cfg.runtime,
        "Handler": cfg.handler,
        "CodeSize": record.code_size,
        "Description": cfg.description,
        "Timeout": cfg.timeout_s,
        "MemorySize": cfg.memory_mb,
        "LastModified": last_modified(record.updated_at),
        # Of the unpacked tree, not of the zip as on AWS: pyfaas stores code by its content.
        "CodeSha256": base64.b64encode(bytes.fromhex(record.code_sha256)).decode(),
        "Version": LATEST,
        "Environment": {"Variables": dict(cfg.environment)},
        "TracingConfig": {"Mode": "PassThrough"},
        "RevisionId": revision_id(record),
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": [ARCHITECTURE],
        "EphemeralStorage": {"Size": 512},
        "LoggingConfig": {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{cfg.name}"},
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
    }


def revision_id(record: FunctionRecord) -> str:
    """Changes whenever the function's code or configuration does (Lambda's RevisionId)."""
    seed = f"{record.code_sha256}|{record.updated_at!r}|{sorted(record.config.to_dict().items())}"
    return str(uuid.UUID(bytes=hashlib.sha256(seed.encode()).digest()[:16]))


def page_size(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise invalid_parameter(
            f"MaxItems must be a whole number from 1 to {MAX_PAGE}, got {raw!r}",
            code="invalid_limit",
        )
    return min(int(raw), MAX_PAGE)


def _config_changes(body: dict[str, Any]) -> dict[str, Any]:
    changes = {_CONFIG_FIELDS[k]: v for k, v in body.items() if k in _CONFIG_FIELDS}
    if "Environment" in body:
        env = body["Environment"]
        variables = env.get("Variables", {}) if isinstance(env, dict) else None
        if not isinstance(variables, dict):
            raise invalid_parameter(
                'Environment must be {"Variables": {"NAME": "value", ...}}',
                code="invalid_environment",
            )
        changes["environment"] = variables
    return changes


def _refuse_unsupported(body: dict[str, Any]) -> None:
    for key, value in body.items():
        if key in _CONFIG_FIELDS or key in _IGNORED or value in (None, [], {}, ""):
            continue
        if key == "Layers":
            raise invalid_parameter(
                "Layers: pyfaas has no Lambda layers; put a requirements.txt in the zip (its "
                "packages are installed into a cached layer)",
                code="unsupported_field",
            )
        raise invalid_parameter(f"{key} is not supported by pyfaas", code="unsupported_field")
    if body.get("Publish"):
        raise _no_publish()
    if body.get("PackageType", "Zip") != "Zip":
        raise invalid_parameter(
            "PackageType must be Zip: pyfaas runs zip functions, not container images",
            code="unsupported_field",
        )


def _no_publish() -> PyfaasError:
    return invalid_parameter(
        "Publish: pyfaas has no published versions yet; leave Publish out (the function "
        "runs as $LATEST)",
        code="unsupported_field",
    )


def _zip_file(code: Any, field: str) -> bytes:
    if not isinstance(code, dict):
        raise invalid_parameter(f"{field} is required: the function's zip, base64-encoded")
    for key in ("S3Bucket", "S3Key", "S3ObjectVersion", "ImageUri"):
        if code.get(key):
            raise invalid_parameter(
                f"{key}: pyfaas takes code as ZipFile (base64) only", code="unsupported_code"
            )
    raw = code.get("ZipFile")
    if not isinstance(raw, str) or not raw:
        raise invalid_parameter(
            f"{field} is required: the function's zip, base64-encoded", code="missing_code"
        )
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise invalid_parameter(f"{field} is not valid base64", code="invalid_zip_file") from None


def _check_revision(body: dict[str, Any], record: FunctionRecord) -> None:
    given = body.get("RevisionId")
    if given is not None and given != revision_id(record):
        raise LambdaApiError(
            412,
            "PreconditionFailedException",
            f"RevisionId {given!r} is not the function's current revision "
            f"({revision_id(record)}): read it again with GetFunction and retry",
            code="revision_mismatch",
        )


def _spool(data: bytes, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="lambda-", suffix=".zip", dir=directory)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return Path(name)
