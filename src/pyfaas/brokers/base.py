"""What every broker module provides: a Source that receives, acknowledges and releases."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pyfaas.model.sources import EventSourceMapping


class BrokerError(Exception):
    """The broker cannot be reached or refused us; the message says what to check."""


class SourceNotFound(BrokerError):
    """The stream or queue a mapping names does not exist on the broker."""


@dataclass(frozen=True, slots=True)
class Message:
    """One received message: ``identifier`` is what a handler names in
    ``batchItemFailures`` (messageId, or a Kinesis-like record's sequenceNumber), ``record``
    the Lambda-shaped record it sees, ``handle`` what the broker module needs to ack it."""

    identifier: str
    record: dict[str, Any]
    handle: Any


@dataclass(frozen=True, slots=True)
class SourceSettings:
    """What a Source is built from: the mapping, the ARN prefix of its records, and the lease
    (how long a message is ours without renewal before another consumer may take it)."""

    mapping: EventSourceMapping
    region: str
    account_id: str
    lease_s: float

    @property
    def arn(self) -> str:
        m = self.mapping
        return f"arn:pyfaas:{m.type}:{self.region}:{self.account_id}:{m.source}"


class Source(Protocol):
    """A broker stream or queue read through one consumer.

    Every method may raise BrokerError; the poller then closes the source, reports the
    mapping unhealthy and connects again after a backoff. Messages received and neither
    acked nor released are delivered again by the broker after a reconnect or a lease.
    """

    async def connect(self) -> None:
        """Connect, and create the consumer (group) if it is missing. Raises BrokerError,
        SourceNotFound."""

    async def receive(self, max_messages: int, wait_s: float) -> list[Message]:
        """Up to ``max_messages``, waiting at most ``wait_s`` for the first one."""

    async def ack(self, messages: Sequence[Message]) -> None:
        """They were processed (or dead-lettered): never deliver them again."""

    async def release(self, messages: Sequence[Message]) -> None:
        """Negative acknowledgement: deliver them again (to us or another consumer)."""

    async def keep(self, messages: Sequence[Message]) -> None:
        """Still working on them (a retry is waiting): renew their lease."""

    async def check(self) -> None:
        """Raise BrokerError if the connection is no longer usable."""

    async def close(self) -> None:
        """Disconnect; never raises."""


SourceFactory = Callable[[SourceSettings], Source]


def body_text(data: bytes) -> tuple[str, bool]:
    """A message body for a record: the text if it is UTF-8, else base64 (and True)."""
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), True


def sqs_record(
    settings: SourceSettings,
    *,
    message_id: str,
    body: bytes,
    sent_ms: int,
    receive_count: int,
    attributes: dict[str, str],
) -> dict[str, Any]:
    """A record in the shape of Lambda's SQS event (used for queues: RabbitMQ, NATS)."""
    text, is_base64 = body_text(body)
    record: dict[str, Any] = {
        "messageId": message_id,
        "receiptHandle": message_id,
        "body": text,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": str(sent_ms),
        },
        "messageAttributes": {
            k: {"stringValue": v, "dataType": "String"} for k, v in attributes.items()
        },
        "eventSource": f"pyfaas:{settings.mapping.type}",
        "eventSourceARN": settings.arn,
        "awsRegion": settings.region,
    }
    if is_base64:
        record["isBase64Encoded"] = True
    return record
