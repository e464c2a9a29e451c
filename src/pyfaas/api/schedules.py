"""``/v1/functions/{name}/schedules``: a function's rate and cron schedules."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from pyfaas.api.body import read_json_object
from pyfaas.api.responses import JSONResponse
from pyfaas.api.services import services
from pyfaas.control.schedules import ScheduleService
from pyfaas.model.schedules import Schedule

# An input may be as large as an async payload (256 KB), plus the other fields.
_BODY_LIMIT = 1024 * 1024


async def create_schedule(request: Request) -> Response:
    """Add a schedule to a function.
    ---
    summary: Create a schedule
    parameters: [{name: name, in: path, required: true, schema: {type: string}}]
    requestBody:
      content:
        application/json:
          schema:
            type: object
            required: [expression]
            properties:
              expression: {type: string, description: "rate(5 minutes), cron(0 12 * * ? *) or
                a 5-field cron line; rate(N seconds) is a pyfaas extension"}
              input: {description: "fixed event (any JSON) instead of the Scheduled Event"}
              enabled: {type: boolean, default: true}
              missed_runs: {type: string, enum: [fire_once, skip], default: fire_once}
              timezone: {type: string, default: UTC, description: for cron expressions}
              qualifier: {type: string, description: "a version number or alias to invoke
                instead of $LATEST"}
    responses:
      201: {description: "the schedule, with next_fire_at"}
      400: {description: "invalid_schedule_expression, invalid_timezone, invalid_missed_runs,
        invalid_qualifier,
        unknown_field, invalid_type, invalid_json"}
      404: {description: function_not_found}
      413: {description: payload_too_large (the input)}
    """
    svc = services(request).schedules
    fields = await read_json_object(request, _BODY_LIMIT, "the schedule")
    schedule = await svc.create(request.path_params["name"], fields)
    return JSONResponse(render(svc, schedule), status_code=201)


async def list_schedules(request: Request) -> Response:
    """A function's schedules, oldest first.
    ---
    summary: List a function's schedules
    parameters: [{name: name, in: path, required: true, schema: {type: string}}]
    responses:
      200: {description: "{schedules: [...]}"}
      404: {description: function_not_found}
    """
    svc = services(request).schedules
    found = await svc.list(request.path_params["name"])
    return JSONResponse({"schedules": [render(svc, s) for s in found]})


async def get_schedule(request: Request) -> Response:
    """One schedule, with when it fires next and what it fired last.
    ---
    summary: Show a schedule
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
      - {name: id, in: path, required: true, schema: {type: string}}
    responses:
      200: {description: the schedule}
      404: {description: schedule_not_found}
    """
    svc = services(request).schedules
    schedule = await svc.get(request.path_params["name"], request.path_params["id"])
    return JSONResponse(render(svc, schedule))


async def patch_schedule(request: Request) -> Response:
    """Change a schedule's expression, input, enabled flag, missed-run policy or time zone.
    ---
    summary: Update a schedule
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
      - {name: id, in: path, required: true, schema: {type: string}}
    requestBody:
      content:
        application/json:
          schema: {type: object}
    responses:
      200: {description: the schedule}
      400: {description: the same codes as creating one}
      404: {description: schedule_not_found}
    """
    svc = services(request).schedules
    fields = await read_json_object(request, _BODY_LIMIT, "the schedule changes")
    schedule = await svc.update(request.path_params["name"], request.path_params["id"], fields)
    return JSONResponse(render(svc, schedule))


async def delete_schedule(request: Request) -> Response:
    """Delete a schedule (events it already queued still run).
    ---
    summary: Delete a schedule
    parameters:
      - {name: name, in: path, required: true, schema: {type: string}}
      - {name: id, in: path, required: true, schema: {type: string}}
    responses:
      204: {description: deleted}
      404: {description: schedule_not_found}
    """
    await services(request).schedules.delete(request.path_params["name"], request.path_params["id"])
    return Response(status_code=204)


def render(svc: ScheduleService, schedule: Schedule) -> dict[str, Any]:
    body = schedule.to_dict()
    body["next_fire_at"] = svc.next_fire_at(schedule)
    return body
