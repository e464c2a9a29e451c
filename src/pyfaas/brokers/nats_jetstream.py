"""NATS JetStream streams through a durable pull consumer, delivered as SQS-like records."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as FetchTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from pyfaas.brokers.base import BrokerError, Message, SourceNotFound, SourceSettings, sqs_record
from pyfaas.model.sources import redact_url

_ERRORS = (NatsError, OSError)


class JetStreamSource:
    """A durable pull consumer (created on first connect) with explicit acks. Its ack wait is
    the lease: a message neither acked nor renewed (``in_progress``) within it is delivered
    again, to us or to another server's pull on the same consumer."""

    def __init__(self, settings: SourceSettings) -> None:
        self._settings = settings
        self._nc: Client | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self._last_error: BaseException | None = None

    async def connect(self) -> None:
        m = self._settings.mapping
        durable = m.consumer_group or "pyfaas"
        try:
            async with asyncio.timeout(15):
                # A broken connection is the poller's to repair (it reports and backs off):
                # no endless reconnect loop inside the client.
                self._nc = nc = await nats.connect(
                    m.url,
                    connect_timeout=5,
                    allow_reconnect=False,
                    max_reconnect_attempts=1,
                    reconnect_time_wait=0.2,
                    error_cb=self._on_error,
                )
                js = nc.jetstream(timeout=5)
                try:
                    await js.stream_info(m.source)
                except NotFoundError:
                    raise SourceNotFound(
                        f"NATS at {redact_url(m.url)} has no JetStream stream {m.source!r}: "
                        "add it first (nats stream add)"
                    ) from None
                try:
                    await js.consumer_info(m.source, durable)
                except NotFoundError:
                    await js.add_consumer(
                        m.source,
                        ConsumerConfig(
                            durable_name=durable,
                            ack_policy=AckPolicy.EXPLICIT,
                            ack_wait=self._settings.lease_s,
                            max_deliver=-1,  # the poller counts retries, not the broker
                            filter_subject=m.subject,
                            deliver_policy=DeliverPolicy.ALL
                            if m.starting_position == "TRIM_HORIZON"
                            else DeliverPolicy.NEW,
                        ),
                    )
                self._sub = await js.pull_subscribe_bind(durable=durable, stream=m.source)
        except SourceNotFound:
            await self.close()
            raise
        except (*_ERRORS, TimeoutError) as exc:
            await self.close()
            raise BrokerError(self._describe(self._last_error or exc)) from None

    async def _on_error(self, exc: Exception) -> None:
        self._last_error = exc

    async def receive(self, max_messages: int, wait_s: float) -> list[Message]:
        await self.check()
        assert self._sub is not None
        try:
            got = await self._sub.fetch(max_messages, timeout=max(wait_s, 0.001))
        except FetchTimeout:
            return []
        except _ERRORS as exc:
            raise BrokerError(self._describe(exc)) from None
        return [self._message(msg) for msg in got]

    async def ack(self, messages: Sequence[Message]) -> None:
        await self._each(messages, "ack")

    async def release(self, messages: Sequence[Message]) -> None:
        await self._each(messages, "nak")

    async def keep(self, messages: Sequence[Message]) -> None:
        await self._each(messages, "in_progress")

    async def _each(self, messages: Sequence[Message], method: str) -> None:
        if not messages:
            return
        await self.check()
        assert self._nc is not None
        try:
            for m in messages:
                await getattr(m.handle, method)()
            await self._nc.flush(timeout=5)  # on the server, not only in our write buffer
        except (*_ERRORS, TimeoutError) as exc:
            raise BrokerError(self._describe(exc)) from None

    async def check(self) -> None:
        if self._nc is None or not self._nc.is_connected:
            raise BrokerError(self._describe(self._last_error or "not connected"))

    async def close(self) -> None:
        nc, self._nc, self._sub = self._nc, None, None
        if nc is not None and not nc.is_closed:
            try:
                await nc.close()
            except (*_ERRORS, TimeoutError):
                pass

    def _describe(self, exc: object) -> str:
        return f"NATS at {redact_url(self._settings.mapping.url)}: {exc or type(exc).__name__}"

    def _message(self, msg: Msg) -> Message:
        meta = msg.metadata
        message_id = f"{meta.stream}:{meta.sequence.stream}"
        attributes = {"subject": msg.subject, **(msg.headers or {})}
        record = sqs_record(
            self._settings,
            message_id=message_id,
            body=msg.data,
            sent_ms=int(meta.timestamp.timestamp() * 1000),
            receive_count=meta.num_delivered,
            attributes=attributes,
        )
        return Message(identifier=message_id, record=record, handle=msg)
