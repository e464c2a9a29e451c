"""Event source mappings: ``/v1/event-source-mappings[/{uuid}]``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from pyfaas.api.body import read_json_object
from pyfaas.api.responses import JSONResponse
from pyfaas.api.services import services

MAX_BODY = 64 * 1024


async def create_mapping(request: Request) -> Response:
    """Map a broker's stream or queue to a function (Lambda's CreateEventSourceMapping).
    ---
    summary: Create an event source mapping
    requestBody:
      content:
        application/json:
          schema:
            type: object
            required: [function, type, url]
            properties:
              function: {type: string}
              type: {type: string, enum: [redis, rabbitmq, nats]}
              url: {type: string, description: "redis://, amqp:// or nats:// URL"}
              stream: {type: string, description: "Redis stream or JetStream stream"}
              queue: {type: string, description: RabbitMQ queue}
              subject: {type: string, description: JetStream filter subject}
              consumer_group: {type: string, description: "Redis group or JetStream durable"}
              batch_size: {type: integer, minimum: 1, maximum: 10000}
              maximum_batching_window_s: {type: number, minimum: 0, maximum: 300}
              enabled: {type: boolean, default: true}
              maximum_retry_attempts: {type: integer, minimum: -1, maximum: 10000}
              on_failure: {type: string, description: "function that gets a failure record"}
              function_response_types:
                {type: array, items: {type: string, enum: [ReportBatchItemFailures]}}
              starting_position: {type: string, enum: [TRIM_HORIZON, LATEST]}
    responses:
      201: {description: "the mapping, with state and health"}
      400:
        description: "invalid_source_type, invalid_source_url, invalid_source_name,
          invalid_batch_size, invalid_batching_window, invalid_retries, invalid_destination,
          invalid_function_response_types, invalid_starting_position, unknown_field,
          source_unreachable, source_not_found"
      404: {description: function_not_found}
    """
    body = await read_json_object(request, MAX_BODY, "the mapping")
    created = await services(request).sources.create(body)
    return JSONResponse(created, status_code=201)


async def list_mappings(request: Request) -> Response:
    """Event source mappings, oldest first.
    ---
    summary: List event source mappings
    parameters: [{name: function, in: query, schema: {type: string}}]
    responses:
      200: {description: "{event_source_mappings: [...]}"}
    """
    found = await services(request).sources.list(request.query_params.get("function"))
    return JSONResponse({"event_source_mappings": found})


async def get_mapping(request: Request) -> Response:
    """One mapping with its state (Creating, Enabled, Disabled) and health.
    ---
    summary: Show an event source mapping
    parameters: [{name: uuid, in: path, required: true, schema: {type: string}}]
    responses:
      200: {description: "the mapping; health is healthy, unhealthy (with last_error) or unknown"}
      404: {description: event_source_mapping_not_found}
    """
    return JSONResponse(await services(request).sources.get(request.path_params["uuid"]))


async def patch_mapping(request: Request) -> Response:
    """Change a mapping: function, batch_size, maximum_batching_window_s, enabled,
    maximum_retry_attempts, on_failure, function_response_types.
    ---
    summary: Update an event source mapping
    parameters: [{name: uuid, in: path, required: true, schema: {type: string}}]
    responses:
      200: {description: the mapping}
      400: {description: "unknown_field and the create errors"}
      404: {description: "event_source_mapping_not_found, function_not_found"}
    """
    changes = await read_json_object(request, MAX_BODY, "the changes")
    uuid = request.path_params["uuid"]
    return JSONResponse(await services(request).sources.update(uuid, changes))


async def delete_mapping(request: Request) -> Response:
    """Stop polling and delete the mapping (the broker keeps its consumer group).
    ---
    summary: Delete an event source mapping
    parameters: [{name: uuid, in: path, required: true, schema: {type: string}}]
    responses:
      200: {description: "the mapping, state Deleting"}
      404: {description: event_source_mapping_not_found}
    """
    return JSONResponse(await services(request).sources.delete(request.path_params["uuid"]))
