"""What a Ray actor of the Ray backend runs: one worker process, as the local backend has.

The actor holds a real pyfaas worker (``python -m pyfaas.runtime.bootstrap``, spawned on
the actor's node) and relays invocations to it, so handlers see exactly the local backend's
contract: Lambda context and environment, log capture, error shapes, memory and timeout
enforcement (the timeout kills the worker process, keeping what it wrote). Ray places the
actor with its function's resource requests; this module is imported inside Ray workers.
The worker runs the code (and layer) the server shipped through the object store, unpacked
in the node's cache (:mod:`pyfaas.executor.ray_code`), not from the server's disk.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from pyfaas.executor.environment import STARTING_PROVISIONED
from pyfaas.executor.ray_code import ShippedTree, unpacked_tree
from pyfaas.executor.worker import HandlerInitFailed, WorkerDied, WorkerProcess, WorkerTimedOut
from pyfaas.model import FunctionVersion, InvocationRequest, Limits


class FunctionActor:
    """One warm worker of a function version, on whatever node Ray placed it.

    Call :meth:`start` once (spawns the worker, waits for its handler import), then
    :meth:`invoke` (several at once when the function serves several per worker), then
    :meth:`stop`. :meth:`closed` returns once stopped: the executor keeps one call of it
    pending to learn at once when the actor (or its node) dies.
    """

    def __init__(
        self,
        fv: FunctionVersion,
        limits: Limits,
        provisioned: bool,
        code: ShippedTree,
        layer: ShippedTree | None,
    ) -> None:
        self._fv = fv
        self._code = code
        self._layer = layer
        self._limits = limits
        self._provisioned = provisioned
        self._worker: WorkerProcess | None = None
        self._closed = asyncio.Event()

    async def start(self) -> dict[str, Any]:
        """Spawn the worker; ``{"t": "ready", "node": ...}`` or ``{"t": "init_error", ...}``
        (the worker is gone by then)."""
        import ray  # only inside Ray workers: the runtime room stays light

        scratch_root = Path(tempfile.gettempdir()) / "pyfaas-ray-workers"
        try:
            code_dir = await unpacked_tree(self._code)
            layer_dir = None if self._layer is None else await unpacked_tree(self._layer)
        except (OSError, ray.exceptions.RayError) as exc:
            self._closed.set()
            message = f"the function's code could not be unpacked on this Ray node: {exc}"
            return {"t": "init_error", "code": "code_unavailable", "message": message, "logs": ""}
        fv = replace(
            self._fv,
            code_dir=str(code_dir),
            layer_dir=None if layer_dir is None else str(layer_dir),
        )
        if fv.gpus:  # the worker sees the devices Ray assigned to this actor, and no others
            devices = ",".join(str(i) for i in ray.get_gpu_ids())
            fv = replace(fv, environment=(*fv.environment, ("CUDA_VISIBLE_DEVICES", devices)))
        token = STARTING_PROVISIONED.set(self._provisioned)
        try:
            await asyncio.to_thread(scratch_root.mkdir, parents=True, exist_ok=True)
            worker = await WorkerProcess.spawn(
                fv, python=sys.executable, scratch_root=scratch_root, limits=self._limits
            )
        finally:
            STARTING_PROVISIONED.reset(token)
        try:
            await worker.handshake()
        except HandlerInitFailed as exc:
            self._closed.set()
            return {"t": "init_error", "code": exc.code, "message": str(exc), "logs": exc.logs}
        self._worker = worker
        return {"t": "ready", "node": ray.get_runtime_context().get_node_id(), "pid": worker.pid}

    async def invoke(self, request: InvocationRequest, timeout_s: float) -> dict[str, Any]:
        """The worker's "result" message, or ``{"t": "timed_out", "logs": ...}`` (the
        worker was killed, or, serving several, told to drop it) or ``{"t": "died",
        "returncode": ...}``."""
        assert self._worker is not None, "start() first"
        try:
            return await self._worker.invoke(request, timeout_s)
        except WorkerTimedOut as exc:
            return {"t": "timed_out", "logs": exc.logs}
        except WorkerDied as exc:
            return {"t": "died", "returncode": exc.returncode}

    async def stop(self, grace_s: float) -> None:
        """Stop the worker (its whole process group), remove its scratch directory."""
        if self._worker is not None:
            await self._worker.stop(grace_s)
        self._closed.set()

    async def closed(self) -> None:
        """Returns once :meth:`stop` ran; fails (RayActorError) if the actor dies first."""
        await self._closed.wait()
