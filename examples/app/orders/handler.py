"""The orders consumer: gets batches of the Redis stream (Kinesis-shaped records)."""

import base64
import json


def handler(event, context):
    for record in event["Records"]:
        order = json.loads(base64.b64decode(record["kinesis"]["data"]))
        print(f"processing order {record['kinesis']['sequenceNumber']}: {order}")
    return {"processed": len(event["Records"])}
