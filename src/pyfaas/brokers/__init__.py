"""Broker clients for event sources: one module per broker, each a Source that connects,
receives Lambda-shaped records, acks, releases and renews. Knows nothing of functions."""

from pyfaas.brokers.base import (
    BrokerError,
    Message,
    Source,
    SourceFactory,
    SourceNotFound,
    SourceSettings,
)
from pyfaas.brokers.nats_jetstream import JetStreamSource
from pyfaas.brokers.rabbitmq import RabbitQueueSource
from pyfaas.brokers.redis_streams import RedisStreamSource

# A new broker (Kafka) is a module with a Source class, one line here and one in
# model.sources.SOURCE_TYPES.
SOURCES: dict[str, SourceFactory] = {
    "redis": RedisStreamSource,
    "rabbitmq": RabbitQueueSource,
    "nats": JetStreamSource,
}

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
