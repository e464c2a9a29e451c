"""A scheduled report: its result goes to the audit function (on_success)."""

import time


def handler(event, context):
    print(f"report ({event.get('kind', 'scheduled')}) at {time.strftime('%H:%M:%S')}")
    return {"report": event.get("kind", "scheduled"), "at": time.time()}
