"""Names on the Lambda API: a function is named by its name, its ARN or a partial ARN
(``ACCOUNT:function:NAME``), any of them with a ``:QUALIFIER``; destinations are ARNs."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from pyfaas.api.lambda_api.errors import invalid_parameter
from pyfaas.model import LATEST, InvalidRequest

T = TypeVar("T")

_FULL_ARN = re.compile(r"^arn:[a-z-]+:lambda:[a-z0-9-]*:\d*:function:([^:]+)(?::([^:]+))?$")
_PARTIAL_ARN = re.compile(r"^\d{12}:function:([^:]+)(?::([^:]+))?$")
_NAME = re.compile(r"^([^:]+)(?::([^:]+))?$")


@dataclass(frozen=True, slots=True)
class FunctionRef:
    """A function as the caller named it: its name and the qualifier, if one was given."""

    name: str
    qualifier: str | None = None

    def latest(self, query_qualifier: str | None = None) -> str:
        """The name, once sure that the call means ``$LATEST``: for the settings pyfaas keeps
        per function (not per version or alias). Raises InvalidParameterValueException."""
        qualifier = query_qualifier or self.qualifier
        if qualifier is not None and qualifier != LATEST:
            raise invalid_parameter(
                f"Qualifier {qualifier!r}: pyfaas keeps this setting for the function as a "
                "whole ($LATEST), not per version or alias; leave the qualifier out",
                code="unsupported_qualifier",
            )
        return self.name

    def qualified(self, query_qualifier: str | None = None) -> str:
        """``name`` or ``name:QUALIFIER`` (a version or an alias), from the path or the
        ``Qualifier`` query parameter; ``$LATEST`` is the plain name. Raises
        InvalidParameterValueException when the two name different qualifiers."""
        qualifier = self.qualifier
        if query_qualifier is not None:
            if qualifier is not None and qualifier != query_qualifier:
                raise invalid_parameter(
                    f"the function name is qualified with {qualifier!r} and Qualifier is "
                    f"{query_qualifier!r}; give one of them",
                    code="invalid_qualifier",
                )
            qualifier = query_qualifier
        if qualifier is None or qualifier == LATEST:
            return self.name
        return f"{self.name}:{qualifier}"


def parse_function_ref(value: str) -> FunctionRef:
    """Raises InvalidParameterValueException for what is none of the accepted forms."""
    if value and ":" not in value:  # a plain name: the common case, no pattern to try
        return FunctionRef(value)
    for pattern in (_FULL_ARN, _PARTIAL_ARN, _NAME):
        found = pattern.match(value)
        if found is not None:
            return FunctionRef(found.group(1), found.group(2))
    raise invalid_parameter(
        f"FunctionName {value!r} is not a function name, ARN or partial ARN",
        code="invalid_name",
    )


def destination_name(arn: object, field: str) -> str:
    """The function a destination ARN names; pyfaas sends destination records to functions
    only. Raises InvalidParameterValueException."""
    if isinstance(arn, str):
        found = _FULL_ARN.match(arn)
        if found is not None and found.group(2) in (None, LATEST):
            return found.group(1)
    raise invalid_parameter(
        f"{field} {arn!r} must be a Lambda function ARN (arn:aws:lambda:REGION:ACCOUNT:"
        "function:NAME); pyfaas delivers destination records to functions only",
        code="invalid_destination",
    )


def last_modified(timestamp: float) -> str:
    """Lambda's LastModified form: ``2026-11-25T10:59:35.000+0000``."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


# pyfaas's configuration fields -> the Lambda names a caller of this API used.
_LAMBDA_NAMES = {
    "handler": "Handler",
    "runtime": "Runtime",
    "memory_mb": "MemorySize",
    "timeout_s": "Timeout",
    "description": "Description",
    "environment": "Environment",
    "reserved_concurrency": "ReservedConcurrentExecutions",
    "provisioned_concurrency": "ProvisionedConcurrentExecutions",
    "maximum_retry_attempts": "MaximumRetryAttempts",
    "maximum_event_age_s": "MaximumEventAgeInSeconds",
    "on_success": "DestinationConfig.OnSuccess",
    "on_failure": "DestinationConfig.OnFailure",
    "batch_size": "BatchSize",
    "maximum_batching_window_s": "MaximumBatchingWindowInSeconds",
    "function_response_types": "FunctionResponseTypes",
    "starting_position": "StartingPosition",
    "additional_version_weights": "RoutingConfig.AdditionalVersionWeights",
}
_FIELD_WORD = re.compile(r"\b(" + "|".join(_LAMBDA_NAMES) + r")\b")


def _renamed(exc: InvalidRequest) -> InvalidRequest:
    message = _FIELD_WORD.sub(lambda m: _LAMBDA_NAMES[m.group(1)], exc.message)
    return type(exc)(message, code=exc.code)


def with_lambda_names(build: Callable[[], T]) -> T:
    """Run ``build``; a configuration error names the fields as the caller did."""
    try:
        return build()
    except InvalidRequest as exc:
        raise _renamed(exc) from None


async def with_lambda_names_async(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable``; a configuration error names the fields as the caller did."""
    try:
        return await awaitable
    except InvalidRequest as exc:
        raise _renamed(exc) from None
