"""Secrets: named values stored encrypted, given to functions as environment variables."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pyfaas.model.errors import InvalidFunctionConfig, InvalidRequest

SECRET_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
SECRET_VALUE_MAX_BYTES = 32 * 1024


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """A secret as clients see it: its name and who uses it, never its value."""

    name: str
    created_at: float
    updated_at: float
    functions: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "functions": list(self.functions),
        }


def validate_secret_name(name: object) -> str:
    """Raise InvalidRequest (invalid_secret_name) unless ``name`` can name a secret."""
    if not isinstance(name, str) or not SECRET_NAME_PATTERN.match(name):
        raise InvalidRequest(
            f"invalid secret name {name!r}: use 1-128 letters, digits, '_', '.', '-', "
            "starting with a letter, digit or '_'",
            code="invalid_secret_name",
        )
    return name


def validate_secret_value(value: object) -> str:
    """Raise InvalidRequest (invalid_secret_value) unless ``value`` can be an environment
    variable's value. The message never repeats the value."""
    if not isinstance(value, str) or not value:
        raise InvalidRequest("value must be a non-empty string", code="invalid_secret_value")
    if "\x00" in value:
        raise InvalidRequest(
            "the value holds a NUL character, which no environment variable can",
            code="invalid_secret_value",
        )
    size = len(value.encode())
    if size > SECRET_VALUE_MAX_BYTES:
        raise InvalidRequest(
            f"the value is {size} bytes; a secret holds at most {SECRET_VALUE_MAX_BYTES}",
            code="invalid_secret_value",
        )
    return value


def validate_secret_refs(
    refs: dict[str, str], environment: dict[str, str], reserved: frozenset[str]
) -> None:
    """Raise InvalidFunctionConfig (invalid_secrets) unless each of a function's
    ``secrets`` maps a free environment variable name to a secret name."""
    for variable, secret in refs.items():
        if (
            not _ENV_NAME.match(variable)
            or variable in reserved
            or variable.startswith("AWS_LAMBDA_")
        ):
            raise InvalidFunctionConfig(
                f"secrets: {variable!r} cannot be an environment variable of the function "
                "(start with a letter, then letters, digits, '_'; not a variable the "
                "runtime sets)",
                code="invalid_secrets",
            )
        if variable in environment:
            raise InvalidFunctionConfig(
                f"secrets: {variable!r} is also in environment; a variable gets one value",
                code="invalid_secrets",
            )
        if not isinstance(secret, str) or not SECRET_NAME_PATTERN.match(secret):
            raise InvalidFunctionConfig(
                f"secrets: {variable!r} names {secret!r}, which is not a secret name",
                code="invalid_secrets",
            )


_ENV_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
