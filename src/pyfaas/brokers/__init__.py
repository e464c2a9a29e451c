"""Broker clients for event sources: one module per broker, each a Source that connects,
receives Lambda-shaped records, acks, releases and renews. Knows nothing of functions.

A broker's client library (redis, aio-pika, nats-py) is imported when a mapping of its type
first opens a source, not when the server starts: most servers use none or one of them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pyfaas.brokers.base import (
    BrokerError,
    Message,
    Source,
    SourceFactory,
    SourceNotFound,
    SourceSettings,
)

if TYPE_CHECKING:
    from pyfaas.brokers.nats_jetstream import JetStreamSource
    from pyfaas.brokers.rabbitmq import RabbitQueueSource
    from pyfaas.brokers.redis_streams import RedisStreamSource

# A new broker (Kafka) is a module with a Source class, one line here and one in
# model.sources.SOURCE_TYPES.
_CLASSES = {
    "redis": ("pyfaas.brokers.redis_streams", "RedisStreamSource"),
    "rabbitmq": ("pyfaas.brokers.rabbitmq", "RabbitQueueSource"),
    "nats": ("pyfaas.brokers.nats_jetstream", "JetStreamSource"),
}


def _class(source_type: str) -> Any:
    module, name = _CLASSES[source_type]
    return getattr(importlib.import_module(module), name)


def _factory(source_type: str) -> SourceFactory:
    def open_source(settings: SourceSettings) -> Source:
        source: Source = _class(source_type)(settings)
        return source

    return open_source


SOURCES: dict[str, SourceFactory] = {source_type: _factory(source_type) for source_type in _CLASSES}


def __getattr__(name: str) -> Any:
    for source_type, (_, class_name) in _CLASSES.items():
        if name == class_name:
            return _class(source_type)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SOURCES",
    "BrokerError",
    "JetStreamSource",
    "Message",
    "RabbitQueueSource",
    "RedisStreamSource",
    "Source",
    "SourceNotFound",
    "SourceSettings",
]
