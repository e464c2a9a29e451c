"""``/v1/functions/{name}/versions`` and ``/aliases``: publish versions, route aliases."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from pyfaas.api.body import parse_json_object, read_body, read_json_object
from pyfaas.api.responses import JSONResponse
from pyfaas.api.services import services
from pyfaas.control.versions import VersionService
from pyfaas.model import InvalidRequest, ServiceUnavailable

_BODY_LIMIT = 64 * 1024


def _versions(request: Request) -> VersionService:
    found = services(request).versions
    if found is None:
        raise ServiceUnavailable("versions are not available on this server")
    return found


async def publish_version(request: Request) -> Response:
    """Snapshot the function's $LATEST code and configuration as a new, immutable version.
    ---
    summary: Publish a version
    description: >
      Numbers count up from 1 and are never reused. When nothing changed since the newest
      version, that version is returned (200) and nothing is published, as Lambda does.
    parameters: [{name: name, in: path, required: true, schema: {type: string}}]
    requestBody:
      content:
        application/json:
          schema:
            type: object
            properties:
              description: {type: string, description: "default: the function's description"}
    responses:
      201: {description: "the new version"}
      200: {description: "nothing changed: the newest version"}
      400: {description: "invalid_description, unknown_field, invalid_json"}
      404: {description: function_not_found}
    """
    svc = _versions(request)
    raw = await read_body(request, _BODY_LIMIT, "the version")
    fields = parse_json_object(raw, "the version") if raw.strip() else {}
    unknown = sorted(set(fields) - {"description"})
    if unknown:
        raise InvalidRequest(
            f"unknown field(s): {', '.join(unknown)}; publishing takes a description only",
            code="unknown_field",
        )
    version, created = await svc.publish(request.path_params["name"], fields.get("description"))
    body = version.to_dict()
    body["created"] = created
    return JSONResponse(body, status_code=201 if created else 200)


async def list_versions(request: Request) -> Response:
    """The function's published versions, oldest first ($LATEST is the function itself).
    ---
    summary: List versions
    parameters: [{name: name, in: path, required: true, schema: {type: string}}]
    responses:
      200: {description: "{versions: [...]}"}
      404: {description: function_not_found}
    """
    found = await _versions(request).list_versions(request.path_params["name"])
    return JSONResponse({"versions": [v.to_dict() for v in found]})


async def get_version(request: Request) -> Response:
    """One published version: its code and configuration snapshot.
    ---
    summary: Show a version
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
      - {name: version, in: path, required: true, schema: {type: string}}
    responses:
      200: {description: the version}
      400: {description: invalid_version}
      404: {description: "function_not_found, version_not_found"}
    """
    found = await _versions(request).get_version(
        request.path_params["name"], request.path_params["version"]
    )
    return JSONResponse(found.to_dict())


async def delete_version(request: Request) -> Response:
    """Delete a published version (not one an alias points to), its workers and URL.
    ---
    summary: Delete a version
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
      - {name: version, in: path, required: true, schema: {type: string}}
    responses:
      204: {description: deleted}
      400: {description: "invalid_version ($LATEST, or not a number)"}
      404: {description: "function_not_found, version_not_found"}
      409: {description: version_in_use}
    """
    await _versions(request).delete_version(
        request.path_params["name"], request.path_params["version"]
    )
    return Response(status_code=204)


async def put_alias(request: Request) -> Response:
    """Create the alias, or replace all of its settings.
    ---
    summary: Create or replace an alias
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
      - {name: alias, in: path, required: true, schema: {type: string}}
    requestBody:
      content:
        application/json:
          schema:
            type: object
            required: [version]
            properties:
              version: {type: string, description: "a published version number"}
              additional_version_weights:
                type: object
                description: "at most one other version and its share in (0, 1)"
                additionalProperties: {type: number}
              description: {type: string}
              provisioned_concurrency: {type: integer}
    responses:
      200: {description: the alias}
      400: {description: "invalid_alias_name, invalid_version, invalid_routing,
        invalid_description, invalid_concurrency, unknown_field, invalid_json"}
      404: {description: "function_not_found, version_not_found"}
    """
    fields = await read_json_object(request, _BODY_LIMIT, "the alias")
    alias = await _versions(request).put_alias(
        request.path_params["name"], request.path_params["alias"], fields
    )
    return JSONResponse(alias.to_dict())


async def patch_alias(request: Request) -> Response:
    """Change some settings of an alias: shift its weights, roll back
    (``additional_version_weights: {}``), move it to another version.
    ---
    summary: Update an alias
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
      - {name: alias, in: path, required: true, schema: {type: string}}
    requestBody:
      content:
        application/json: {schema: {type: object}}
    responses:
      200: {description: the alias}
      400: {description: "as PUT"}
      404: {description: "function_not_found, alias_not_found, version_not_found"}
    """
    fields = await read_json_object(request, _BODY_LIMIT, "the alias")
    alias = await _versions(request).patch_alias(
        request.path_params["name"], request.path_params["alias"], fields
    )
    return JSONResponse(alias.to_dict())


async def get_alias(request: Request) -> Response:
    """An alias: its version, routing and provisioned concurrency.
    ---
    summary: Show an alias
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
      - {name: alias, in: path, required: true, schema: {type: string}}
    responses:
      200: {description: the alias}
      400: {description: invalid_alias_name}
      404: {description: "function_not_found, alias_not_found"}
    """
    alias = await _versions(request).get_alias(
        request.path_params["name"], request.path_params["alias"]
    )
    return JSONResponse(alias.to_dict())


async def list_aliases(request: Request) -> Response:
    """The function's aliases, by name.
    ---
    summary: List aliases
    parameters: [{name: name, in: path, required: true, schema: {type: string}}]
    responses:
      200: {description: "{aliases: [...]}"}
      404: {description: function_not_found}
    """
    found = await _versions(request).list_aliases(request.path_params["name"])
    return JSONResponse({"aliases": [a.to_dict() for a in found]})


async def delete_alias(request: Request) -> Response:
    """Delete an alias and its function URL (its versions stay).
    ---
    summary: Delete an alias
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
      - {name: alias, in: path, required: true, schema: {type: string}}
    responses:
      204: {description: deleted}
      400: {description: invalid_alias_name}
      404: {description: "function_not_found, alias_not_found"}
    """
    await _versions(request).delete_alias(request.path_params["name"], request.path_params["alias"])
    return Response(status_code=204)
