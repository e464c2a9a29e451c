"""An `async def` handler: awaited by the runtime, free to await I/O."""

import asyncio


async def handler(event, context):
    delay = float(event.get("delay_s", 0.01))
    await asyncio.sleep(delay)
    return {"slept_s": delay, "request_id": context.aws_request_id}
