"""Synchronous invocations: payload checks, execution, and the log of each call."""

from __future__ import annotations

import random
import time
import uuid

import orjson

from pyfaas.control.functions import FunctionService
from pyfaas.model import (
    InvalidPayload,
    InvocationRequest,
    InvocationResult,
    Limits,
    PayloadTooLarge,
)
from pyfaas.scaling import Scaler
from pyfaas.telemetry import LogWriter


class InvocationService:
    """Runs one invocation of a function and records its log."""

    def __init__(
        self,
        functions: FunctionService,
        scaler: Scaler,
        logs: LogWriter,
        limits: Limits,
    ) -> None:
        self._functions = functions
        self._scaler = scaler
        self._logs = logs
        self._limits = limits

    def check_payload(self, payload: bytes) -> bytes:
        """Return the payload to pass on (``{}`` when empty).

        Raises PayloadTooLarge over the sync limit and InvalidPayload when it is not JSON.
        """
        if len(payload) > self._limits.sync_payload_bytes:
            raise PayloadTooLarge(
                f"payload is {len(payload)} bytes; the limit for synchronous invocations "
                f"is {self._limits.sync_payload_bytes} bytes",
            )
        if not payload.strip():
            return b"{}"
        try:
            orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise InvalidPayload(f"payload is not valid JSON: {exc}") from None
        return payload

    async def invoke(self, name: str, payload: bytes) -> InvocationResult:
        """Run ``name`` with ``payload`` and wait for its result.

        Raises FunctionNotFound, PayloadTooLarge, InvalidPayload, TooManyRequests (throttled
        by reserved or server concurrency). Handler errors, timeouts and
        crashes are not raised: they come back as a result with ``function_error`` set.
        """
        fv = await self._functions.resolve(name)
        payload = self.check_payload(payload)
        request = InvocationRequest(
            request_id=new_request_id(), payload=payload, invoked_function_arn=fv.arn
        )
        started = time.time()
        result = await self._scaler.invoke(fv, request)
        self._logs.submit_invocation(fv, result, started)
        return result


def new_request_id() -> str:
    """A random UUID4 string. Request ids must be unique, not secret: no syscall needed."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))
