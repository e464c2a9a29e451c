"""RabbitMQ queues over AMQP 0-9-1 (aio-pika), delivered as SQS-like records."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, ChannelNotFoundEntity

from pyfaas.brokers.base import BrokerError, Message, SourceNotFound, SourceSettings, sqs_record
from pyfaas.model.sources import redact_url

_ERRORS = (*CONNECTION_EXCEPTIONS, TimeoutError)


class RabbitQueueSource:
    """A consumer with manual acks and a prefetch of one batch: the broker never hands us
    more unacknowledged messages than fit in a batch. What we hold when the connection goes
    (a crash, a restart) the broker queues again by itself."""

    def __init__(self, settings: SourceSettings) -> None:
        self._settings = settings
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._buffer: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

    async def connect(self) -> None:
        m = self._settings.mapping
        self._buffer = asyncio.Queue()
        try:
            async with asyncio.timeout(10):
                self._connection = connection = await aio_pika.connect(m.url, timeout=5)
                self._channel = channel = await connection.channel()
                await channel.set_qos(prefetch_count=m.batch_size)
                queue = await channel.declare_queue(m.source, passive=True)
                await queue.consume(self._buffer.put, no_ack=False)
        except ChannelNotFoundEntity:
            await self.close()
            raise SourceNotFound(
                f"RabbitMQ at {redact_url(m.url)} has no queue {m.source!r}: declare it first"
            ) from None
        except _ERRORS as exc:
            await self.close()
            raise BrokerError(self._describe(exc)) from None

    async def receive(self, max_messages: int, wait_s: float) -> list[Message]:
        await self.check()
        try:
            async with asyncio.timeout(wait_s):
                first = await self._buffer.get()
        except TimeoutError:
            return []
        got = [first]
        while len(got) < max_messages and not self._buffer.empty():
            got.append(self._buffer.get_nowait())
        return [self._message(m) for m in got]

    async def ack(self, messages: Sequence[Message]) -> None:
        try:
            for m in messages:
                await m.handle.ack()
        except _ERRORS as exc:
            raise BrokerError(self._describe(exc)) from None

    async def release(self, messages: Sequence[Message]) -> None:
        try:
            for m in messages:
                await m.handle.nack(requeue=True)
        except _ERRORS as exc:
            raise BrokerError(self._describe(exc)) from None

    async def keep(self, messages: Sequence[Message]) -> None:
        """Nothing to renew: unacknowledged messages are ours while the connection lives."""

    async def check(self) -> None:
        # A dropped socket closes the channel; the connection object may not notice.
        if self._connection is None or self._connection.is_closed or self._channel is None:
            raise BrokerError(self._describe("not connected"))
        if self._channel.is_closed:
            raise BrokerError(self._describe("the connection was closed"))

    async def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(*_ERRORS):
                await connection.close()

    def _describe(self, exc: object) -> str:
        return f"RabbitMQ at {redact_url(self._settings.mapping.url)}: {exc or type(exc).__name__}"

    def _message(self, message: AbstractIncomingMessage) -> Message:
        headers = {str(k): str(v) for k, v in (message.headers or {}).items()}
        count = int(headers.get("x-delivery-count", "0")) + 1 if message.redelivered else 1
        sent = message.timestamp.timestamp() if message.timestamp else time.time()
        message_id = message.message_id or uuid.uuid4().hex
        record = sqs_record(
            self._settings,
            message_id=message_id,
            body=message.body,
            sent_ms=int(sent * 1000),
            receive_count=max(count, 2 if message.redelivered else 1),
            attributes=headers,
        )
        return Message(identifier=message_id, record=record, handle=message)
