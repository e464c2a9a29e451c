"""The control plane's services: deploy, look up, delete and invoke functions.

The API calls these; they compose the store, packaging, executor and telemetry rooms.
"""

from pyfaas.control.events import EventService
from pyfaas.control.functions import DeployOutcome, FunctionService
from pyfaas.control.invocations import InvocationService
from pyfaas.control.logs import LogQueryService
from pyfaas.control.metrics import MetricsService

__all__ = [
    "DeployOutcome",
    "EventService",
    "FunctionService",
    "InvocationService",
    "LogQueryService",
    "MetricsService",
]
