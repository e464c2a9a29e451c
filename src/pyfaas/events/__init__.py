"""Asynchronous invocations: the durable queue (group commit), the dispatcher (leases,
retries with backoff, maximum event age), destinations and the dead-letter queue."""

from pyfaas.events.dispatcher import Dispatcher, DispatchSettings
from pyfaas.events.queue import Enqueuer

__all__ = ["DispatchSettings", "Dispatcher", "Enqueuer"]
