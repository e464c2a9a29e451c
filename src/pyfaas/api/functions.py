"""``/v1/functions``: create, update, read, list and delete functions."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response

from pyfaas.api.body import read_json_object
from pyfaas.api.responses import JSONResponse
from pyfaas.api.schedules import render as render_schedule
from pyfaas.api.services import services
from pyfaas.model import (
    FunctionConfig,
    InvalidFunctionConfig,
    InvalidRequest,
    LengthRequired,
    PayloadTooLarge,
    validate_name,
)

# Room for the multipart framing and the config field around the zip itself.
_FORM_OVERHEAD = 1024 * 1024


async def create_function(request: Request) -> Response:
    """Create a function from a zip bundle; 409 if the name is taken.
    ---
    summary: Create a function
    requestBody:
      content:
        multipart/form-data:
          schema:
            type: object
            required: [config, code]
            properties:
              config: {type: string, description: "JSON: name, handler, runtime, memory_mb,
                timeout_s, environment, description; wsgi or asgi ('module:app') for a web app"}
              code: {type: string, format: binary, description: "zip of the code"}
    responses:
      201: {description: created}
      400: {description: "invalid config or bundle (codes: invalid_*, bundle_*, handler_*)"}
      409: {description: function_exists}
      413: {description: bundle_too_large}
    """
    return await _deploy(request, name=None, create_only=True)


async def put_function(request: Request) -> Response:
    """Create the function, or replace its code and configuration if it exists.
    ---
    summary: Create or update a function
    parameters: [{name: name, in: path, required: true, schema: {type: string}}]
    requestBody:
      content:
        multipart/form-data:
          schema:
            type: object
            required: [code]
            properties:
              config: {type: string, description: "JSON configuration; name defaults to the path"}
              code: {type: string, format: binary}
    responses:
      200: {description: "updated (changed tells whether anything differed)"}
      201: {description: created}
      400: {description: invalid config or bundle}
      413: {description: bundle_too_large}
    """
    return await _deploy(request, name=request.path_params["name"], create_only=False)


async def get_function(request: Request) -> Response:
    """A function's configuration, code identity and worker statistics.
    ---
    summary: Show a function
    parameters: [{name: name, in: path, required: true, schema: {type: string}}]
    responses:
      200: {description: the function}
      404: {description: function_not_found}
    """
    svc = services(request)
    record = await svc.functions.get(request.path_params["name"])
    body = record.to_dict()
    body["stats"] = asdict(svc.scaler.stats(record.name))
    body["stats"].update(svc.logs.stats(record.name).to_dict())
    body["async_events"] = await svc.events.counts(record.name)
    body["schedules"] = [
        render_schedule(svc.schedules, s) for s in await svc.schedules.list(record.name)
    ]
    return JSONResponse(body)


async def patch_function(request: Request) -> Response:
    """Change configuration fields of a function, keeping its code.
    ---
    summary: Update a function's configuration
    description: >
      A JSON object with any of the configuration fields (memory_mb, timeout_s, environment,
      description, handler, reserved_concurrency, provisioned_concurrency,
      concurrency_per_worker, idle_timeout_s, wsgi, asgi). Changes workers see are validated in
      a new worker first; scaling settings alone keep the warm workers.
    parameters: [{name: name, in: path, required: true, schema: {type: string}}]
    requestBody:
      content:
        application/json:
          schema: {type: object}
    responses:
      200: {description: "the function (changed tells whether anything differed)"}
      400: {description: invalid_config and friends}
      404: {description: function_not_found}
    """
    svc = services(request)
    changes = await read_json_object(request, 64 * 1024, "the configuration changes")
    outcome = await svc.functions.update_config(request.path_params["name"], changes)
    body = outcome.record.to_dict()
    body.update(changed=outcome.changed, init_duration_ms=outcome.init_duration_ms)
    return JSONResponse(body)


async def list_functions(request: Request) -> Response:
    """Every function, ordered by name.
    ---
    summary: List functions
    responses:
      200: {description: "{functions: [...]}"}
    """
    records = await services(request).functions.list()
    return JSONResponse({"functions": [r.to_dict() for r in records]})


async def delete_function(request: Request) -> Response:
    """Delete a function, its logs and its workers.
    ---
    summary: Delete a function
    parameters: [{name: name, in: path, required: true, schema: {type: string}}]
    responses:
      204: {description: deleted}
      404: {description: function_not_found}
    """
    await services(request).functions.delete(request.path_params["name"])
    return Response(status_code=204)


async def _deploy(request: Request, *, name: str | None, create_only: bool) -> Response:
    svc = services(request)
    if name is not None:
        validate_name(name)
    limit = svc.limits.zipped_code_bytes
    declared = request.headers.get("content-length", "")
    if not (declared.isascii() and declared.isdigit()):
        # Without a declared length the multipart parser would spool any amount to disk
        # before the size could be checked.
        raise LengthRequired(
            "a deploy must declare its size: send a Content-Length header (not chunked encoding)"
        )
    if int(declared) > limit + _FORM_OVERHEAD:
        raise PayloadTooLarge(
            f"the upload is {declared} bytes; zipped code may be at most {limit} bytes",
            code="bundle_too_large",
        )
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequest(
            "send multipart/form-data with a 'config' field (JSON) and a 'code' file (zip)",
            code="invalid_content_type",
        )
    try:
        form = await request.form(max_files=1, max_fields=2, max_part_size=64 * 1024)
    except MultiPartException as exc:
        raise InvalidRequest(f"could not read the multipart body: {exc.message}") from None
    try:
        config = _parse_config(form.get("config"), name)
        code = form.get("code")
        if not isinstance(code, UploadFile):
            raise InvalidRequest(
                "the 'code' file (a zip of the function's code) is missing", code="missing_code"
            )
        zip_path = await asyncio.to_thread(_spool_upload, code, svc.upload_dir, limit)
        try:
            outcome = await svc.functions.deploy(config, zip_path, create_only=create_only)
        finally:
            zip_path.unlink(missing_ok=True)
    finally:
        await form.close()
    body = outcome.record.to_dict()
    body.update(
        created=outcome.created,
        changed=outcome.changed,
        init_duration_ms=outcome.init_duration_ms,
    )
    return JSONResponse(body, status_code=201 if outcome.created else 200)


def _parse_config(raw: Any, name: str | None) -> FunctionConfig:
    data: Any = {}
    if isinstance(raw, str) and raw.strip():
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidFunctionConfig(f"'config' is not valid JSON: {exc}") from None
    elif raw is not None and not isinstance(raw, str):
        raise InvalidFunctionConfig("'config' must be a form field holding JSON, not a file")
    if not isinstance(data, dict):
        raise InvalidFunctionConfig("'config' must be a JSON object")
    if name is not None and data.setdefault("name", name) != name:
        raise InvalidFunctionConfig(
            f"config names {data['name']!r} but the URL names {name!r}", code="name_mismatch"
        )
    return FunctionConfig.from_dict(data)


def _spool_upload(upload: UploadFile, directory: Path, limit: int) -> Path:
    """Copy the uploaded zip to a file of our own, refusing it past ``limit`` bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="upload-", suffix=".zip", dir=directory)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            upload.file.seek(0)
            shutil.copyfileobj(upload.file, out, 1 << 20)
            size = out.tell()
        if size > limit:
            raise PayloadTooLarge(
                f"zipped code is {size} bytes; the limit is {limit} bytes",
                code="bundle_too_large",
            )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path
