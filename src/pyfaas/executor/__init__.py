"""Worker processes and the wire protocol to them."""

from pyfaas.executor.backend import ExecutorBackend, FunctionStats
from pyfaas.executor.local import LocalExecutor

__all__ = ["ExecutorBackend", "FunctionStats", "LocalExecutor"]
