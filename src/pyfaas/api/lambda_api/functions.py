"""CreateFunction, GetFunction, GetFunctionConfiguration, ListFunctions, UpdateFunctionCode,
UpdateFunctionConfiguration, DeleteFunction; a version's or an alias's configuration."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import os
import platform
import tempfile
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

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
)
from pyfaas.model.versions import PublishedVersion, check_qualifier

T = TypeVar("T")
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
    publish = _publish_wanted(call, body)
    path = await asyncio.to_thread(_spool, zip_bytes, svc.upload_dir)
    try:
        outcome = await with_lambda_names_async(
            svc.functions.deploy(config, path, create_only=True)
        )
    finally:
        path.unlink(missing_ok=True)
    if publish:
        published, _ = await call.versions().publish(name)
        return JSONResponse(version_configuration(svc, published), status_code=201)
    return JSONResponse(configuration(svc, outcome.record), status_code=201)


async def get_function(call: LambdaCall) -> Response:
    """GetFunction: the configuration (of $LATEST, a version or an alias's version), where
    the code is, the reserved concurrency (the function's, whatever the qualifier)."""
    found = await qualified_configuration(call)
    record = await call.services.functions.get(call.function().name)
    out: dict[str, Any] = {
        "Configuration": found,
        "Code": {"RepositoryType": "pyfaas"},
        "Tags": {},
    }
    if record.config.reserved_concurrency is not None:
        out["Concurrency"] = {"ReservedConcurrentExecutions": record.config.reserved_concurrency}
    return JSONResponse(out)


async def get_function_configuration(call: LambdaCall) -> Response:
    """GetFunctionConfiguration, of $LATEST, a version or an alias's version."""
    return JSONResponse(await qualified_configuration(call))


async def list_functions(call: LambdaCall) -> Response:
    """ListFunctions, by name, ``MaxItems`` at a time (50 unless asked) after ``Marker``."""
    records = await call.services.functions.list()
    return JSONResponse(
        paginate(
            call, "Functions", records, lambda r: r.name, lambda r: configuration(call.services, r)
        )
    )


async def update_function_code(call: LambdaCall) -> Response:
    """UpdateFunctionCode from a new ``ZipFile``; the configuration stays."""
    body = call.json()
    name = call.function().latest()
    for key in ("S3Bucket", "S3Key", "S3ObjectVersion", "ImageUri"):
        if body.get(key):
            raise invalid_parameter(
                f"{key}: pyfaas takes code as ZipFile (base64) only", code="unsupported_code"
            )
    if body.get("DryRun"):
        raise unsupported("UpdateFunctionCode with DryRun")
    publish = _publish_wanted(call, body)
    zip_bytes = await asyncio.to_thread(_zip_file, body, "ZipFile")
    svc = call.services
    existing = await svc.functions.get(name)
    check_revision(body, existing)
    path = await asyncio.to_thread(_spool, zip_bytes, svc.upload_dir)
    try:
        outcome = await svc.functions.deploy(existing.config, path)
    finally:
        path.unlink(missing_ok=True)
    if publish:
        published, _ = await call.versions().publish(name)
        return JSONResponse(version_configuration(svc, published))
    return JSONResponse(configuration(svc, outcome.record))


async def update_function_configuration(call: LambdaCall) -> Response:
    """UpdateFunctionConfiguration: Handler, Runtime, MemorySize, Timeout, Environment,
    Description; the code stays."""
    body = call.json()
    name = call.function().latest()
    _refuse_unsupported(body)
    svc = call.services
    check_revision(body, await svc.functions.get(name))
    changes = _config_changes(body)
    outcome = await with_lambda_names_async(svc.functions.update_config(name, changes))
    return JSONResponse(configuration(svc, outcome.record))


async def delete_function(call: LambdaCall) -> Response:
    """DeleteFunction: the function, its logs, URL, schedules and workers; with a version
    as the Qualifier, that version only (not one an alias points to)."""
    ref = call.function()
    qualifier = call.query("Qualifier") or ref.qualifier
    if qualifier is None:
        await call.services.functions.delete(ref.name)
        return Response(status_code=204)
    if qualifier == LATEST:
        raise invalid_parameter(
            "Qualifier $LATEST: $LATEST is the function itself; leave the qualifier out to "
            "delete the function with all its versions and aliases",
            code="invalid_qualifier",
        )
    if isinstance(check_qualifier(qualifier), str):
        raise invalid_parameter(
            f"Qualifier {qualifier!r} is an alias: delete it with DeleteAlias; DeleteFunction "
            "deletes a version (a number) or the whole function",
            code="invalid_qualifier",
        )
    await call.versions().delete_version(ref.name, qualifier)
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
    """A function (or a published version of it) as Lambda's FunctionConfiguration. Deploys
    are synchronous (the handler is imported before the call returns), so a function that
    exists is Active and its last update Successful: boto3's waiters return at once."""
    cfg = record.config
    arn = svc.functions.arn_of(cfg.name)
    return {
        "FunctionName": cfg.name,
        "FunctionArn": arn if record.version == LATEST else f"{arn}:{record.version}",
        "Runtime": cfg.runtime,
        "Handler": cfg.handler,
        "CodeSize": record.code_size,
        "Description": cfg.description,
        "Timeout": cfg.timeout_s,
        "MemorySize": cfg.memory_mb,
        "LastModified": last_modified(record.updated_at),
        # Of the unpacked tree, not of the zip as on AWS: pyfaas stores code by its content.
        "CodeSha256": base64.b64encode(bytes.fromhex(record.code_sha256)).decode(),
        "Version": record.version,
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


def version_configuration(
    svc: ApiServices, published: PublishedVersion, qualifier: str | None = None
) -> dict[str, Any]:
    """A published version as Lambda's FunctionConfiguration; ``qualifier`` (an alias that
    points to it) qualifies its FunctionArn instead of the version number."""
    out = configuration(svc, published.as_record())
    out["Description"] = published.description
    if qualifier is not None:
        out["FunctionArn"] = f"{svc.functions.arn_of(published.function)}:{qualifier}"
    return out


async def qualified_configuration(call: LambdaCall) -> dict[str, Any]:
    """The configuration the call's function name and ``Qualifier`` name: $LATEST's, a
    version's, or that of the version an alias points to (its main one, not the canary).
    Raises ResourceNotFoundException, InvalidParameterValueException."""
    name, _, qualifier = call.function().qualified(call.query("Qualifier")).partition(":")
    svc = call.services
    if not qualifier:
        return configuration(svc, await svc.functions.get(name))
    target = check_qualifier(qualifier)
    versions = call.versions()
    if isinstance(target, str):
        target = (await versions.get_alias(name, target)).version
    published = await versions.get_version(name, str(target))
    return version_configuration(svc, published, qualifier)


def revision_id(record: FunctionRecord) -> str:
    """Changes whenever the function's code or configuration does (Lambda's RevisionId)."""
    seed = f"{record.code_sha256}|{record.updated_at!r}|{sorted(record.config.to_dict().items())}"
    return str(uuid.UUID(bytes=hashlib.sha256(seed.encode()).digest()[:16]))


def paginate(
    call: LambdaCall,
    field: str,
    items: Sequence[T],
    marker_of: Callable[[T], str],
    render: Callable[[T], dict[str, Any]],
    order: Callable[[str], Any] = str,
) -> dict[str, Any]:
    """Lambda's answer to a list call: ``MaxItems`` of ``items`` (50 unless asked), those
    after ``Marker`` in ``order``, and the NextMarker when more follow. Raises
    InvalidParameterValueException (invalid_limit)."""
    limit = page_size(call.query("MaxItems"))
    marker = call.query("Marker")
    if marker:
        start = order(marker)
        items = [i for i in items if order(marker_of(i)) > start]
    page = items[:limit]
    out: dict[str, Any] = {field: [render(i) for i in page]}
    if len(items) > limit:
        out["NextMarker"] = marker_of(page[-1])
    return out


def page_size(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE:
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
    if body.get("PackageType", "Zip") != "Zip":
        raise invalid_parameter(
            "PackageType must be Zip: pyfaas runs zip functions, not container images",
            code="unsupported_field",
        )


def _publish_wanted(call: LambdaCall, body: dict[str, Any]) -> bool:
    """Whether to publish a version after the change (checked before anything is written)."""
    publish = body.get("Publish", False)
    if not isinstance(publish, bool):
        raise invalid_parameter(f"Publish must be true or false, got {publish!r}")
    if publish:
        call.versions()
    return publish


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


def check_revision(body: dict[str, Any], record: FunctionRecord) -> None:
    """Raise PreconditionFailedException unless the body's RevisionId (if any) is the
    function's current one."""
    check_revision_of(body, revision_id(record), "the function's", "GetFunction")


def check_revision_of(body: dict[str, Any], current: str, whose: str, reader: str) -> None:
    """Raise PreconditionFailedException unless the body's RevisionId (if any) is
    ``current``."""
    given = body.get("RevisionId")
    if given is not None and given != current:
        raise LambdaApiError(
            412,
            "PreconditionFailedException",
            f"RevisionId {given!r} is not {whose} current revision ({current}): read it "
            f"again with {reader} and retry",
            code="revision_mismatch",
        )


def _spool(data: bytes, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="lambda-", suffix=".zip", dir=directory)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return Path(name)
