"""The Ray backend: a function version's warm workers are Ray actors placed across a cluster.

The pools, scale-up, idle reaping to zero and provisioned concurrency are the local
backend's own (:class:`~pyfaas.executor.local.LocalExecutor`, given a :class:`RayLauncher`);
only where a worker runs differs. Each actor (:mod:`pyfaas.executor.ray_actor`) asks Ray for
its function's resources (``memory=`` its memory size, ``num_cpus=`` Lambda's share of a
vCPU for that size, ``num_gpus=`` its ``gpus``) and holds a real pyfaas worker process on its
node, so handlers behave exactly as on the local backend. Every call from the server awaits
ObjectRefs on its event loop; Ray's blocking calls (init, nodes, shutdown) run in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from pyfaas.executor.environment import STARTING_PROVISIONED
from pyfaas.executor.local import LocalExecutor
from pyfaas.executor.ray_actor import FunctionActor
from pyfaas.executor.ray_code import TreeShipper
from pyfaas.executor.worker import (
    HandlerInitFailed,
    WorkerDied,
    WorkerTimedOut,
    init_timeout_s,
)
from pyfaas.model import FunctionVersion, InvocationRequest, Limits, WorkerLost

log = logging.getLogger("pyfaas.executor")

# Lambda gives a function one vCPU at 1,769 MB, in proportion below and above.
_MB_PER_CPU = 1769
# How long an actor may wait for a node with room (and its process to start) before its
# cold start fails; after the actor answered, the worker's own init timeout applies.
PLACEMENT_TIMEOUT_S = 60.0
# How much longer than the function's timeout the server waits for an actor's answer before
# it counts the actor as unresponsive (the actor enforces the timeout itself, keeping logs).
_ANSWER_GRACE_S = 5.0
# A locally started Ray: a small object store (payloads are at most 6 MB), no dashboard.
_LOCAL_OBJECT_STORE_BYTES = 100 << 20


def actor_resources(fv: FunctionVersion) -> dict[str, Any]:
    """What a worker of ``fv`` asks Ray for: its memory size, and Lambda's CPU share for it
    (128 MB: 0.07 CPU, so many idle-to-light workers share a small node)."""
    return {
        "memory": fv.memory_mb << 20,
        "num_cpus": round(max(0.01, fv.memory_mb / _MB_PER_CPU), 4),
        "num_gpus": fv.gpus,
    }


# How long the server waits for a Ray cluster's GCS port to accept a connection at start
# (ray.init itself retries an unreachable address for minutes).
_CONNECT_TIMEOUT_S = 5.0


def check_reachable(address: str) -> None:
    """Raise OSError at once if ``host:port`` (not ``ray://`` or ``auto``) takes no
    connection, instead of letting ray.init retry for minutes. Blocking."""
    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not (port.isascii() and port.isdigit()):
        return
    try:
        socket.create_connection((host, int(port)), _CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise OSError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


def _most_gpus_on_a_node() -> float:
    """The most GPUs any live node of the cluster has (a blocking call to Ray's GCS)."""
    import ray

    return max(
        (float(n["Resources"].get("GPU", 0)) for n in ray.nodes() if n.get("Alive")), default=0.0
    )


class RayWorker:
    """A warm worker that is a Ray actor (see :class:`~pyfaas.executor.backend.PooledWorker`).

    A handler error, timeout or crash comes back as on the local backend; the actor itself
    (or its node) dying raises WorkerLost, a 503 the caller may retry.
    """

    def __init__(self, fv: FunctionVersion, actor: Any, node_id: str, init_ms: float) -> None:
        self.fv = fv
        self.actor = actor
        self.node_id = node_id
        self.start_kind = "ray"
        self.init_ms = init_ms
        self.last_used = time.monotonic()
        self.load = 0
        self.draining = False
        self._lost = False
        self._stopped: asyncio.Future[None] | None = None
        # One call pending for the actor's life: it fails the moment Ray sees the actor die.
        self._watch = asyncio.ensure_future(self._watch_actor())

    @property
    def alive(self) -> bool:
        return self._stopped is None and not self._lost

    async def invoke(self, request: InvocationRequest, timeout_s: float) -> dict[str, Any]:
        """Run one invocation on the actor. Raises WorkerTimedOut, WorkerDied, WorkerLost."""
        import ray

        if self._lost:
            raise self._lost_error()
        call = self.actor.invoke.remote(request, timeout_s)
        try:
            reply: dict[str, Any] = await asyncio.wait_for(call, timeout_s + _ANSWER_GRACE_S)
        except TimeoutError:
            raise WorkerTimedOut("") from None  # the actor did not answer: it is stopped
        except ray.exceptions.RayError:
            self._lost = True
            raise self._lost_error() from None
        kind = reply.get("t")
        if kind == "timed_out":
            raise WorkerTimedOut(reply["logs"])
        if kind == "died":
            raise WorkerDied(reply["returncode"])
        self.last_used = time.monotonic()
        return reply

    def stop(self, grace_s: float = 1.0) -> asyncio.Future[None]:
        """Stop the worker process in the actor, then kill the actor (ray.kill). Idempotent."""
        if self._stopped is None:
            self._stopped = asyncio.ensure_future(self._stop(grace_s))
        return asyncio.shield(self._stopped)

    async def _stop(self, grace_s: float) -> None:
        import ray

        if not self._lost:
            with contextlib.suppress(ray.exceptions.RayError, TimeoutError):
                await asyncio.wait_for(self.actor.stop.remote(grace_s), grace_s + 5.0)
        with contextlib.suppress(ray.exceptions.RayError):
            ray.kill(self.actor, no_restart=True)
        self._watch.cancel()

    async def _watch_actor(self) -> None:
        import ray

        try:
            await self.actor.closed.remote()
        except ray.exceptions.RayError:
            if self._stopped is None:
                log.warning("the Ray actor of a worker of %s is gone", self.fv.name)
            self._lost = True

    def _lost_error(self) -> WorkerLost:
        return WorkerLost(
            f"the Ray actor running {self.fv.name} was lost (its process or node "
            f"{self.node_id[:12]} died); the invocation may have run in part: retry it"
        )


class RayLauncher:
    """Starts Ray actors as workers (see :class:`~pyfaas.executor.backend.WorkerLauncher`).

    ``address``: an existing cluster (``ray://`` or ``host:port``); None starts a local Ray
    sized to this machine (no dashboard, a small object store).
    """

    def __init__(self, *, address: str | None, limits: Limits) -> None:
        self._address = address
        self._limits = limits
        self._started_ray = False
        self._actor_class: Any = None
        self._workers: set[RayWorker] = set()
        self._shipper = TreeShipper()

    async def start(self) -> None:
        """Connect to (or start) Ray; blocks a thread, not the loop. Raises OSError."""
        await asyncio.to_thread(self._connect)

    def _connect(self) -> None:
        import ray

        if not ray.is_initialized():
            options: dict[str, Any] = {
                "namespace": "pyfaas",
                "log_to_driver": False,
                "configure_logging": False,
            }
            if self._address:
                check_reachable(self._address)
                options["address"] = self._address
            else:
                options.update(
                    num_cpus=os.cpu_count() or 1,
                    object_store_memory=_LOCAL_OBJECT_STORE_BYTES,
                    include_dashboard=False,
                )
            try:
                ray.init(**options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = self._address or "a local Ray"
                raise OSError(f"cannot start or reach {where}: {exc}") from exc
            self._started_ray = True
        self._actor_class = ray.remote(FunctionActor)

    async def launch(self, fv: FunctionVersion) -> RayWorker:
        """A new actor of ``fv`` with its handler imported. Raises HandlerInitFailed (the
        actor is gone), WorkerLost (its process or node died while it started), OSError (no
        node took it in time, or it failed starting)."""
        import ray

        asked_at = time.perf_counter()
        if fv.network == "none":
            raise HandlerInitFailed(
                "network 'none' needs the bubblewrap sandbox, which the Ray backend does not "
                "use; deploy with network 'host'",
                code="network_unavailable",
            )
        if self._actor_class is None:
            raise OSError("the Ray launcher is not started")
        if fv.gpus:
            most = await asyncio.to_thread(_most_gpus_on_a_node)
            if most < fv.gpus:
                raise HandlerInitFailed(
                    f"gpus {fv.gpus}: no node of the Ray cluster has that many (the most on "
                    f"one node: {most:g}); add GPU nodes or deploy with fewer gpus",
                    code="gpus_unavailable",
                )
        # The code travels with the actor (object store, node cache): nodes share no disk.
        code = await self._shipper.ship(fv.pool_key, f"code-{fv.code_sha256}", fv.code_dir)
        layer = None
        if fv.layer_dir:
            layer_key = f"layer-{Path(fv.layer_dir).name}"
            layer = await self._shipper.ship(fv.pool_key, layer_key, fv.layer_dir)
        resources = actor_resources(fv)
        actor = self._actor_class.options(
            **resources,
            max_concurrency=fv.concurrency_per_worker + 2,  # + stop() and the closed() watch
            max_restarts=0,
            scheduling_strategy="SPREAD",  # a node lost takes few of a function's workers
        ).remote(fv, self._limits, STARTING_PROVISIONED.get(), code, layer)
        try:
            hello = await asyncio.wait_for(
                actor.start.remote(), PLACEMENT_TIMEOUT_S + init_timeout_s(fv)
            )
        except TimeoutError:
            ray.kill(actor, no_restart=True)
            raise OSError(
                f"no Ray node took a worker of {fv.name} ({resources['num_cpus']} CPU, "
                f"{fv.memory_mb} MB) within {PLACEMENT_TIMEOUT_S:.0f} s"
            ) from None
        except BaseException as exc:
            with contextlib.suppress(ray.exceptions.RayError):
                ray.kill(actor, no_restart=True)
            if isinstance(exc, ray.exceptions.RayActorError) and not exc.actor_init_failed:
                # Its process or node died under it, not our code: elsewhere it may start.
                raise WorkerLost(
                    f"the Ray actor starting a worker of {fv.name} was lost (its process or "
                    "node died); retry: the next one goes to a live node"
                ) from None
            if isinstance(exc, ray.exceptions.RayError):
                raise OSError(f"the Ray actor of {fv.name} died starting: {exc}") from None
            raise
        if hello["t"] == "init_error":
            ray.kill(actor, no_restart=True)
            raise HandlerInitFailed(hello["message"], code=hello["code"], logs=hello["logs"])
        init_ms = (time.perf_counter() - asked_at) * 1000
        worker = RayWorker(fv, actor, hello["node"], init_ms)
        self._workers.add(worker)
        return worker

    async def drop(self, pool_key: tuple[object, ...]) -> None:
        """Let go of the version's code in the object store (unless another pool uses it)."""
        self._workers = {w for w in self._workers if w.alive}
        self._shipper.release(pool_key)

    async def close(self) -> None:
        """Stop every actor this launcher started, then Ray if it started it."""
        import ray

        workers, self._workers = self._workers, set()
        self._shipper.clear()
        await asyncio.gather(*(w.stop(0.5) for w in workers), return_exceptions=True)
        if self._started_ray:
            self._started_ray = False
            await asyncio.to_thread(ray.shutdown)


class RayExecutor(LocalExecutor):
    """The executor on Ray: the local backend's pools, with workers that are Ray actors."""

    def __init__(
        self,
        *,
        limits: Limits,
        scratch_dir: Path,
        idle_timeout_s: float = 600.0,
        address: str | None = None,
    ) -> None:
        super().__init__(
            limits=limits,
            scratch_dir=scratch_dir,
            idle_timeout_s=idle_timeout_s,
            launcher=RayLauncher(address=address, limits=limits),
        )
