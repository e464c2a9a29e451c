"""Logs, metrics and traces of invocations."""

from pyfaas.telemetry.feed import LogFeed, Subscription
from pyfaas.telemetry.lines import record_view, structured_lines
from pyfaas.telemetry.logs import LogSink, LogWriter
from pyfaas.telemetry.report import format_invocation_log
from pyfaas.telemetry.retention import LogSweeper, RetentionPolicy

__all__ = [
    "LogFeed",
    "LogSink",
    "LogSweeper",
    "LogWriter",
    "RetentionPolicy",
    "Subscription",
    "format_invocation_log",
    "record_view",
    "structured_lines",
]
