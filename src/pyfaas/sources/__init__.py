"""Broker event sources (event source mappings): Redis Streams, RabbitMQ queues and NATS
JetStream streams feeding functions in batches, at least once, through the scaler."""

from pyfaas.sources.base import BrokerError, Message, Source, SourceNotFound, SourceSettings
from pyfaas.sources.poller import DeadLetter, PollSettings
from pyfaas.sources.service import SOURCES, SourceService

__all__ = [
    "SOURCES",
    "BrokerError",
    "DeadLetter",
    "Message",
    "PollSettings",
    "Source",
    "SourceNotFound",
    "SourceService",
    "SourceSettings",
]
