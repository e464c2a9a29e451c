"""Receives Lambda destination records: what succeeded (from report) or failed for good."""


def handler(event, context):
    condition = event.get("requestContext", {}).get("condition", "?")
    arn = event.get("requestContext", {}).get("functionArn", "")
    function = arn.split(":function:")[-1].split(":")[0] or "?"
    print(f"audit: {function} -> {condition}: {event.get('responsePayload')}")
    return {"audited": function}
