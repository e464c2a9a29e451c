"""Logs, metrics and traces of invocations."""

from pyfaas.telemetry.logs import LogSink, LogWriter
from pyfaas.telemetry.report import format_invocation_log

__all__ = ["LogSink", "LogWriter", "format_invocation_log"]
