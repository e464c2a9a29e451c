"""The smallest function: greets whoever the event names."""

import logging

logger = logging.getLogger()


def handler(event, context):
    name = event.get("name", "world")
    logger.info("greeting %s", name)
    print(f"hello from {context.function_name} ({context.aws_request_id})")
    return {"message": f"Hello, {name}!", "remaining_ms": context.get_remaining_time_in_millis()}
