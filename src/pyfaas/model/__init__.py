"""Domain types and the error hierarchy. Imports nothing but the standard library."""

from pyfaas.model.errors import (
    ConfigurationError,
    Conflict,
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
)
from pyfaas.model.function import (
    LATEST,
    FunctionConfig,
    FunctionRecord,
    Limits,
    validate_name,
)
from pyfaas.model.invocation import FunctionVersion, InvocationRequest, InvocationResult
from pyfaas.model.logs import LogRecord

__all__ = [
    "LATEST",
    "ConfigurationError",
    "Conflict",
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
    "LogRecord",
    "NotFound",
    "PayloadTooLarge",
    "PyfaasError",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "validate_name",
]
