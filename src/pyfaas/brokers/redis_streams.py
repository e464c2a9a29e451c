"""Redis Streams through a consumer group, delivered as Kinesis-like records."""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from pyfaas.brokers.base import BrokerError, Message, SourceSettings
from pyfaas.model.sources import redact_url


class RedisStreamSource:
    """XREADGROUP for new entries, XACK after success, XAUTOCLAIM for the entries a consumer
    that died (a crashed server) left pending longer than the lease, XCLAIM to renew ours.

    The consumer name is new per server process; after a reconnect it reads its own pending
    entries first, so nothing received before the connection broke is skipped.
    """

    def __init__(self, settings: SourceSettings) -> None:
        self._settings = settings
        m = settings.mapping
        self._stream, self._group = m.source, m.consumer_group or "pyfaas"
        self._consumer = f"pyfaas-{secrets.token_hex(6)}"
        self._lease_ms = max(1, int(settings.lease_s * 1000))
        self._redis: aioredis.Redis | None = None
        self._own_pending = True
        self._claim_cursor = "0-0"
        self._next_claim = 0.0

    async def connect(self) -> None:
        try:
            self._redis = aioredis.from_url(
                self._settings.mapping.url, socket_connect_timeout=5, health_check_interval=30
            )
            await self._redis.ping()
            start = "0" if self._settings.mapping.starting_position == "TRIM_HORIZON" else "$"
            try:
                await self._redis.xgroup_create(self._stream, self._group, start, mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):  # the group exists already: fine
                    raise
            await self._forget_dead_consumers()
        except (RedisError, OSError, ValueError) as exc:
            await self.close()
            raise BrokerError(self._describe(exc)) from None
        self._own_pending, self._claim_cursor, self._next_claim = True, "0-0", 0.0

    async def _forget_dead_consumers(self) -> None:
        """Drop our consumers that crashed long ago and hold nothing (their entries were
        claimed): a live one reads at least every few seconds."""
        idle_ms = max(60_000, 10 * self._lease_ms)
        for info in await self._client().xinfo_consumers(self._stream, self._group):
            name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
            if name.startswith("pyfaas-") and not info["pending"] and info["idle"] > idle_ms:
                await self._client().xgroup_delconsumer(self._stream, self._group, name)

    async def receive(self, max_messages: int, wait_s: float) -> list[Message]:
        try:
            if self._own_pending:
                entries = await self._read("0", max_messages, None)
                if entries:
                    return self._messages(entries)
                self._own_pending = False
            if time.monotonic() >= self._next_claim:
                entries = await self._autoclaim(max_messages)
                if entries:
                    return self._messages(entries)
            block = max(1, int(wait_s * 1000)) if wait_s > 0 else None
            return self._messages(await self._read(">", max_messages, block))
        except (RedisError, OSError) as exc:
            raise BrokerError(self._describe(exc)) from None

    async def _read(self, start: str, count: int, block: int | None) -> list[Any]:
        answer: Any = await self._client().xreadgroup(
            self._group, self._consumer, {self._stream: start}, count=count, block=block
        )
        if not answer:
            return []
        # RESP2 answers [[stream, entries]], RESP3 {stream: [entries]}.
        entries = next(iter(answer.values())) if isinstance(answer, dict) else answer[0][1]
        if entries and isinstance(entries[0], list) and not isinstance(entries[0][0], bytes):
            entries = entries[0]
        return list(entries)

    async def _autoclaim(self, count: int) -> list[Any]:
        """Entries pending on another consumer for longer than the lease become ours."""
        cursor, entries, *_ = await self._client().xautoclaim(
            self._stream,
            self._group,
            self._consumer,
            min_idle_time=self._lease_ms,
            start_id=self._claim_cursor,
            count=count,
        )
        self._claim_cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
        if self._claim_cursor == "0-0":  # a full pass: look again after half a lease
            self._next_claim = time.monotonic() + self._settings.lease_s / 2
        return [(entry_id, fields) for entry_id, fields in entries if fields is not None]

    async def ack(self, messages: Sequence[Message]) -> None:
        if messages:
            await self._call("xack", self._stream, self._group, *[m.handle for m in messages])

    async def release(self, messages: Sequence[Message]) -> None:
        # Redis has no negative ack: the entries stay pending on this consumer, which reads
        # its pending entries again first (other consumers claim them after the lease).
        self._own_pending = True

    async def keep(self, messages: Sequence[Message]) -> None:
        if messages:
            await self._call(
                "xclaim",
                self._stream,
                self._group,
                self._consumer,
                0,
                [m.handle for m in messages],
                justid=True,
            )

    async def check(self) -> None:
        await self._call("ping")

    async def close(self) -> None:
        client, self._redis = self._redis, None
        if client is None:
            return
        try:
            # A consumer with nothing pending is only a name: drop it so groups stay tidy.
            info = await client.xpending_range(
                self._stream, self._group, "-", "+", 1, consumername=self._consumer
            )
            if not info:
                await client.xgroup_delconsumer(self._stream, self._group, self._consumer)
        except (RedisError, OSError):
            pass
        with contextlib.suppress(RedisError, OSError):
            await client.aclose()

    def _client(self) -> aioredis.Redis:
        if self._redis is None:
            raise BrokerError("not connected to Redis")
        return self._redis

    async def _call(self, command: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return await getattr(self._client(), command)(*args, **kwargs)
        except (RedisError, OSError) as exc:
            raise BrokerError(self._describe(exc)) from None

    def _describe(self, exc: BaseException) -> str:
        url = redact_url(self._settings.mapping.url)
        return f"Redis at {url}: {exc or type(exc).__name__}"

    def _messages(self, entries: list[Any]) -> list[Message]:
        return [self._message(entry_id, fields) for entry_id, fields in entries]

    def _message(self, raw_id: bytes, fields: dict[bytes, bytes]) -> Message:
        entry_id = raw_id.decode()
        if list(fields) == [b"data"]:
            data = fields[b"data"]  # one blob, as a Kinesis record carries
        else:
            text = {
                k.decode(errors="replace"): v.decode(errors="replace") for k, v in fields.items()
            }
            data = json.dumps(text).encode()
        record = {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": self._stream,
                "sequenceNumber": entry_id,
                "data": base64.b64encode(data).decode("ascii"),
                "approximateArrivalTimestamp": int(entry_id.split("-")[0]) / 1000,
            },
            "eventSource": "pyfaas:redis",
            "eventVersion": "1.0",
            "eventID": f"{self._stream}:{entry_id}",
            "eventName": "pyfaas:redis:record",
            "eventSourceARN": self._settings.arn,
            "awsRegion": self._settings.region,
        }
        return Message(identifier=entry_id, record=record, handle=raw_id)
