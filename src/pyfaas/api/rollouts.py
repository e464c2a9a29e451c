"""``/v1/functions/{name}/aliases/{alias}/rollout``: canary rollouts the server watches."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from pyfaas.api.body import read_json_object
from pyfaas.api.responses import JSONResponse
from pyfaas.api.services import services
from pyfaas.control.rollouts import RolloutService
from pyfaas.model import ServiceUnavailable

_BODY_LIMIT = 64 * 1024


def _rollouts(request: Request) -> RolloutService:
    found = services(request).rollouts
    if found is None:
        raise ServiceUnavailable("rollouts are not available on this server")
    return found


async def start_rollout(request: Request) -> Response:
    """Start a canary rollout: the alias keeps its version and sends ``weight`` of its
    traffic to ``version``; the server watches that version's error rate for ``window_s``.
    ---
    summary: Start a canary rollout
    description: >
      Above ``error_threshold`` (failed invocations of the new version, from the usage
      records, over all of its invocations since the start) the alias goes back to its
      version alone (state rolled_back). When the window ends within the threshold the
      split stays (passed), or with ``promote`` the alias moves to the new version
      (promoted). Changing the alias meanwhile ends the watch (stopped). The watch runs in
      the server: it goes on without the client and across a restart.
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
      - {name: alias, in: path, required: true, schema: {type: string}}
    requestBody:
      content:
        application/json:
          schema:
            type: object
            required: [version, weight]
            properties:
              version: {type: string, description: "the published version to roll out"}
              weight: {type: number, description: "its share of the alias, in (0, 1)"}
              window_s: {type: number, description: "1-86400 seconds, default 60"}
              error_threshold: {type: number, description: "in [0, 1), default 0.05"}
              promote: {type: boolean, description: "move the alias to it when the window passes"}
    responses:
      201: {description: the rollout (state watching)}
      400: {description: "invalid_version, invalid_routing, invalid_rollout,
        invalid_alias_name, unknown_field, invalid_json"}
      404: {description: "function_not_found, alias_not_found, version_not_found"}
      409: {description: "rollout_in_progress, metering_off"}
    """
    fields = await read_json_object(request, _BODY_LIMIT, "the rollout")
    rollout = await _rollouts(request).begin(
        request.path_params["name"], request.path_params["alias"], fields
    )
    return JSONResponse(rollout.to_dict(), status_code=201)


async def get_rollout(request: Request) -> Response:
    """The alias's latest rollout: its state, and the new version's measured error rate.
    ---
    summary: Show an alias's rollout
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
      - {name: alias, in: path, required: true, schema: {type: string}}
    responses:
      200: {description: the rollout}
      400: {description: invalid_alias_name}
      404: {description: "function_not_found, alias_not_found, rollout_not_found"}
    """
    rollout = await _rollouts(request).get(
        request.path_params["name"], request.path_params["alias"]
    )
    return JSONResponse(rollout.to_dict())
