"""Peer: a no-op Ray Serve deployment behind Ray Serve's HTTP proxy, in its own process tree.

    .venv/bin/python bench/peer_ray_serve.py PORT

Starts a local Ray cluster (no dashboard), Serve's proxy on 127.0.0.1:PORT and one deployment
(one replica, ``max_ongoing_requests`` high so that the proxy never queues in front of it),
prints ``ready`` on stdout, then serves until its stdin closes; then shuts Serve and Ray down
so that no Ray process outlives it. bench/peers.py drives it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import ray
from ray import serve

MAX_ONGOING_REQUESTS = 1000


@serve.deployment(
    max_ongoing_requests=MAX_ONGOING_REQUESTS,
    num_replicas=1,
    ray_actor_options={"num_cpus": 0},
)
class Noop:
    """The no-op handler; async so that the replica runs it without a thread hop."""

    async def __call__(self, request: Any) -> dict[str, Any]:
        return {}


def main() -> None:
    port = int(sys.argv[1])
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(Noop.bind(), name="noop", route_prefix="/")  # type: ignore[attr-defined]
        print("ready", flush=True)
        sys.stdin.read()  # until the bench closes our stdin
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
