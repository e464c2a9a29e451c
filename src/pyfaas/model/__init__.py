"""Domain types and the error hierarchy. Imports nothing but the standard library."""

from pyfaas.model.errors import (
    ConfigurationError,
    Conflict,
    Forbidden,
    FunctionExists,
    FunctionNotFound,
    InvalidBundle,
    InvalidFunctionConfig,
    InvalidPayload,
    InvalidRequest,
    LengthRequired,
    NotFound,
    PayloadTooLarge,
    PyfaasError,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    WorkerLost,
)
from pyfaas.model.events import AsyncEvent
from pyfaas.model.function import (
    LATEST,
    FunctionConfig,
    FunctionRecord,
    Limits,
    validate_name,
)
from pyfaas.model.invocation import (
    FunctionVersion,
    InvocationRequest,
    InvocationResult,
    new_request_id,
)
from pyfaas.model.logs import LogQuery, LogRecord, LogStats
from pyfaas.model.usage import PricePlan, UsageRecord

__all__ = [
    "LATEST",
    "AsyncEvent",
    "ConfigurationError",
    "Conflict",
    "Forbidden",
    "FunctionConfig",
    "FunctionExists",
    "FunctionNotFound",
    "FunctionRecord",
    "FunctionVersion",
    "InvalidBundle",
    "InvalidFunctionConfig",
    "InvalidPayload",
    "InvalidRequest",
    "InvocationRequest",
    "InvocationResult",
    "LengthRequired",
    "Limits",
    "LogQuery",
    "LogRecord",
    "LogStats",
    "NotFound",
    "PayloadTooLarge",
    "PricePlan",
    "PyfaasError",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "UsageRecord",
    "WorkerLost",
    "new_request_id",
    "validate_name",
]
