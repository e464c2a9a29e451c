"""How an SDK call's arguments and result travel: JSON by default, cloudpickle when the
function is declared ``serializer="pickle"``.

A call is the event ``{"pyfaas.args": [...], "pyfaas.kwargs": {...}}`` (JSON), or
``{"pyfaas.pickle": "<base64 cloudpickle of (args, kwargs)>"}``; a pickled result is
``{"pyfaas.pickle": "<base64>"}``. The bundle's entry module (bundle_entry.py) reads the same.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Literal

import cloudpickle  # type: ignore[import-untyped]

from pyfaas.sdk.errors import SerializationError

Serializer = Literal["json", "pickle"]
SERIALIZERS: tuple[Serializer, ...] = ("json", "pickle")
ARGS, KWARGS, PICKLED = "pyfaas.args", "pyfaas.kwargs", "pyfaas.pickle"


def encode_call(
    serializer: Serializer, args: tuple[Any, ...], kwargs: dict[str, Any], *, function: str
) -> bytes:
    """The event for ``function(*args, **kwargs)``. Raises SerializationError."""
    if serializer == "pickle":
        try:
            pickled = cloudpickle.dumps((args, kwargs))
        except Exception as exc:
            raise SerializationError(
                f"the arguments of {function} cannot be pickled: {exc}"
            ) from None
        return json.dumps({PICKLED: base64.b64encode(pickled).decode()}).encode()
    try:
        return json.dumps({ARGS: list(args), KWARGS: kwargs}, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"the arguments of {function} cannot be sent as JSON ({exc}); pass JSON values "
            "(dict, list, str, int, float, bool, None) or declare the function with "
            'serializer="pickle"'
        ) from None


def decode_result(serializer: Serializer, value: Any) -> Any:
    """The function's return value from its decoded JSON result."""
    if serializer == "pickle" and isinstance(value, dict) and set(value) == {PICKLED}:
        return cloudpickle.loads(base64.b64decode(value[PICKLED]))
    return value
