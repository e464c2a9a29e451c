"""Event source mappings: a poller per enabled mapping feeds a function batches from a broker
(the brokers room), at least once, through the scaler; the service behind the API."""

from pyfaas.sources.poller import DeadLetter, Poller, PollSettings
from pyfaas.sources.service import SourceService

__all__ = ["DeadLetter", "PollSettings", "Poller", "SourceService"]
