"""The shop's HTTP API (a function URL): POST /orders queues an order on a Redis stream.

Standard library only, so the app deploys without installing anything: the one Redis
command it needs (XADD) is written out by hand below.
"""

import json
import os
import socket


def handler(event, context):
    method = event["requestContext"]["http"]["method"]
    path = event["rawPath"]
    if method == "GET" and path == "/health":
        return {"status": "ok"}
    if method == "POST" and path == "/orders":
        order = json.loads(event.get("body") or "{}")
        if not order.get("item"):
            return {"statusCode": 400, "body": json.dumps({"error": "an order needs an item"})}
        entry_id = xadd(os.environ["ORDERS_STREAM"], json.dumps(order))
        return {"statusCode": 202, "body": json.dumps({"queued": entry_id})}
    return {"statusCode": 404, "body": json.dumps({"error": f"no route {method} {path}"})}


def xadd(stream, data):
    """Append ``data`` to ``stream`` (Redis XADD) and return the entry's id."""
    parts = [b"XADD", stream.encode(), b"*", b"data", data.encode()]
    command = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
    address = (os.environ["REDIS_HOST"], int(os.environ["REDIS_PORT"]))
    with socket.create_connection(address, timeout=5) as conn:
        conn.sendall(command)
        reply = conn.recv(4096)
    if not reply.startswith(b"$"):
        raise RuntimeError(f"redis refused XADD: {reply!r}")
    return reply.split(b"\r\n")[1].decode()
