"""PublishVersion, ListVersionsByFunction and the aliases (CreateAlias, GetAlias,
UpdateAlias, DeleteAlias, ListAliases), on pyfaas's published versions and weighted aliases
(control.versions). An alias routes to its version and at most one more
(RoutingConfig.AdditionalVersionWeights), as on Lambda."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable
from typing import Any

from starlette.responses import Response

from pyfaas.api.lambda_api.errors import invalid_parameter
from pyfaas.api.lambda_api.functions import (
    check_revision,
    check_revision_of,
    configuration,
    paginate,
    version_configuration,
)
from pyfaas.api.lambda_api.naming import with_lambda_names_async
from pyfaas.api.lambda_api.operation import LambdaCall
from pyfaas.api.responses import JSONResponse
from pyfaas.api.services import ApiServices
from pyfaas.model import LATEST, InvalidRequest
from pyfaas.model.versions import VERSION_PATTERN, Alias, parse_version

_ALIAS_KEYS = {"Name", "FunctionVersion", "Description", "RoutingConfig", "RevisionId"}
_ROUTING = "RoutingConfig.AdditionalVersionWeights"


# --- versions ------------------------------------------------------------------------------


async def publish_version(call: LambdaCall) -> Response:
    """PublishVersion: snapshot $LATEST as a new version (or answer the newest one when
    nothing changed since, as Lambda does). ``CodeSha256`` and ``RevisionId``, when given,
    must be $LATEST's."""
    body = call.json()
    name = call.function().latest()
    svc = call.services
    versions = call.versions()
    record = await svc.functions.get(name)
    check_revision(body, record)
    given = body.get("CodeSha256")
    current = configuration(svc, record)["CodeSha256"]
    if given is not None and given != current:
        raise invalid_parameter(
            f"CodeSha256 {given!r} is not the code of $LATEST ({current}); the function's "
            "code changed since you read it: read it again with GetFunction",
            code="code_sha256_mismatch",
        )
    published, _ = await with_lambda_names_async(versions.publish(name, body.get("Description")))
    return JSONResponse(version_configuration(svc, published), status_code=201)


def _version_key(version: str) -> int:
    """Lambda's order of versions: $LATEST first, then by number."""
    return 0 if version == LATEST else int(version)


async def list_versions_by_function(call: LambdaCall) -> Response:
    """ListVersionsByFunction: $LATEST, then the published versions oldest first,
    ``MaxItems`` at a time (50 unless asked) after ``Marker`` (a version)."""
    name = call.function().latest()
    marker = call.query("Marker")
    if marker and marker != LATEST and not VERSION_PATTERN.match(marker):
        raise invalid_parameter(
            f"Marker {marker!r} is not one this API handed out (NextMarker of a previous page)",
            code="invalid_marker",
        )
    svc = call.services
    record = await svc.functions.get(name)
    entries = [configuration(svc, record)]
    entries += [version_configuration(svc, v) for v in await call.versions().list_versions(name)]
    page = paginate(call, "Versions", entries, lambda e: e["Version"], dict, _version_key)
    return JSONResponse(page)


# --- aliases -------------------------------------------------------------------------------


def alias_configuration(svc: ApiServices, alias: Alias) -> dict[str, Any]:
    """An alias as Lambda's AliasConfiguration."""
    out: dict[str, Any] = {
        "AliasArn": f"{svc.functions.arn_of(alias.function)}:{alias.name}",
        "Name": alias.name,
        "FunctionVersion": str(alias.version),
        "Description": alias.description,
        "RevisionId": alias_revision_id(alias),
    }
    if alias.additional_version is not None:
        weights = {str(alias.additional_version): alias.additional_weight}
        out["RoutingConfig"] = {"AdditionalVersionWeights": weights}
    return out


def alias_revision_id(alias: Alias) -> str:
    """Changes whenever the alias does (Lambda's RevisionId of an alias)."""
    seed = repr(sorted(alias.to_dict().items())).encode()
    return str(uuid.UUID(bytes=hashlib.sha256(seed).digest()[:16]))


def _alias_fields(body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """pyfaas's alias fields from Lambda's request. Raises InvalidParameterValueException."""
    unknown = sorted(k for k, v in body.items() if k not in _ALIAS_KEYS and v is not None)
    if unknown:
        raise invalid_parameter(
            f"{', '.join(unknown)}: not a field of an alias (pyfaas reads "
            f"{', '.join(sorted(_ALIAS_KEYS))})",
            code="unsupported_field",
        )
    fields: dict[str, Any] = {}
    if creating or "FunctionVersion" in body:
        fields["version"] = parse_version(body.get("FunctionVersion"), "FunctionVersion")
    if "Description" in body:
        fields["description"] = body["Description"]
    if "RoutingConfig" in body:
        routing = body["RoutingConfig"] or {}
        if not isinstance(routing, dict):
            raise invalid_parameter(
                f'RoutingConfig must be {{"AdditionalVersionWeights": {{"VERSION": WEIGHT}}}}, '
                f"got {routing!r}",
                code="invalid_routing",
            )
        weights = routing.get("AdditionalVersionWeights")
        fields["additional_version_weights"] = {} if weights is None else weights
    return fields


async def _alias_change(change: Awaitable[Alias]) -> Alias:
    """Await ``change``; its errors name the fields as the caller did."""
    try:
        return await with_lambda_names_async(change)
    except InvalidRequest as exc:
        if exc.code != "invalid_routing" or _ROUTING in exc.message:
            raise
        raise InvalidRequest(f"{_ROUTING}: {exc.message}", code=exc.code) from None


def _alias_name(given: object) -> str:
    if not isinstance(given, str) or not given:
        raise invalid_parameter(
            "Name is required: the alias's name (letters, digits, '-', '_')",
            code="invalid_alias_name",
        )
    return given


async def create_alias(call: LambdaCall) -> Response:
    """CreateAlias: a name for a published version, maybe with a canary version taking a
    share of the calls. ResourceConflictException if the alias exists."""
    body = call.json()
    name = call.function().latest()
    alias_name = _alias_name(body.get("Name"))
    fields = _alias_fields(body, creating=True)
    alias = await _alias_change(call.versions().create_alias(name, alias_name, fields))
    return JSONResponse(alias_configuration(call.services, alias), status_code=201)


async def get_alias(call: LambdaCall) -> Response:
    """GetAlias."""
    name = call.function().latest()
    alias = await call.versions().get_alias(name, call.request.path_params["Name"])
    return JSONResponse(alias_configuration(call.services, alias))


async def update_alias(call: LambdaCall) -> Response:
    """UpdateAlias: the fields given change (``RoutingConfig`` with no weights ends a
    canary); ``RevisionId``, when given, must be the alias's current one."""
    body = call.json()
    name = call.function().latest()
    alias_name = call.request.path_params["Name"]
    fields = _alias_fields(body, creating=False)
    versions = call.versions()
    if body.get("RevisionId") is not None:
        current = alias_revision_id(await versions.get_alias(name, alias_name))
        check_revision_of(body, current, "the alias's", "GetAlias")
    alias = await _alias_change(versions.patch_alias(name, alias_name, fields))
    return JSONResponse(alias_configuration(call.services, alias))


async def delete_alias(call: LambdaCall) -> Response:
    """DeleteAlias: the alias and its function URL (its versions stay)."""
    name = call.function().latest()
    await call.versions().delete_alias(name, call.request.path_params["Name"])
    return Response(status_code=204)


async def list_aliases(call: LambdaCall) -> Response:
    """ListAliases, by name, ``MaxItems`` at a time after ``Marker`` (an alias name); with
    ``FunctionVersion``, only the aliases routing to that version."""
    name = call.function().latest()
    wanted = call.query("FunctionVersion")
    aliases = await call.versions().list_aliases(name)
    if wanted == LATEST:
        aliases = []  # a pyfaas alias routes to published versions only
    elif wanted is not None:
        number = parse_version(wanted, "FunctionVersion")
        aliases = [a for a in aliases if number in a.versions]
    return JSONResponse(
        paginate(
            call,
            "Aliases",
            aliases,
            lambda a: a.name,
            lambda a: alias_configuration(call.services, a),
        )
    )
