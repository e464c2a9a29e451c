"""The handler of every function the SDK deploys, copied into its bundle as pyfaas_entry.py.

It runs in the worker, standing alone (the standard library, and cloudpickle for functions
shipped by value or declared ``serializer="pickle"``). At import, once per worker, it loads
the user's function as pyfaas_function.json describes it: unpickled from
pyfaas_function.pkl (shipped by value), or imported from the module shipped as source. Each
invocation then decodes the call (see pyfaas.sdk.serialization), runs the function and
encodes its result. An event that is not an SDK call is passed to the function as it is:
``fn(event)``, or ``fn(event, context)`` for a Lambda-style ``(event, context)`` handler.
"""

from __future__ import annotations

import base64
import importlib
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

ARGS, KWARGS, PICKLED = "pyfaas.args", "pyfaas.kwargs", "pyfaas.pickle"
SPEC_FILE, PICKLE_FILE = "pyfaas_function.json", "pyfaas_function.pkl"


def _cloudpickle() -> Any:
    # Imported only when needed: a JSON function shipped as source never loads it.
    import cloudpickle  # type: ignore[import-untyped]

    return cloudpickle


def _load(root: Path) -> tuple[Callable[..., Any], dict[str, Any]]:
    spec: dict[str, Any] = json.loads((root / SPEC_FILE).read_text())
    if spec["shipped"] == "value":
        fn = _cloudpickle().loads((root / PICKLE_FILE).read_bytes())
    else:
        fn = importlib.import_module(spec["module"])
        for part in spec["qualname"].split("."):
            fn = getattr(fn, part)
        # The module's @app.function made it an SDK Function: run what it wraps.
        fn = getattr(fn, "pyfaas_raw_function", fn)
    return fn, spec


def _takes_context(fn: Callable[..., Any]) -> bool:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 and positional[1].name == "context"


_function, _spec = _load(Path(__file__).resolve().parent)
_pickled = _spec["serializer"] == "pickle"
_with_context = _takes_context(_function)


def _arguments(event: Any, context: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if isinstance(event, dict):
        if PICKLED in event and len(event) == 1:
            args, kwargs = _cloudpickle().loads(base64.b64decode(event[PICKLED]))
            return tuple(args), dict(kwargs)
        if ARGS in event and set(event) <= {ARGS, KWARGS}:
            return tuple(event[ARGS]), dict(event.get(KWARGS) or {})
    return ((event, context) if _with_context else (event,)), {}


def _result(value: Any) -> Any:
    if not _pickled:
        return value
    return {PICKLED: base64.b64encode(_cloudpickle().dumps(value)).decode()}


if inspect.iscoroutinefunction(_function):

    async def handler(event: Any, context: Any) -> Any:
        args, kwargs = _arguments(event, context)
        return _result(await _function(*args, **kwargs))

else:

    def handler(event: Any, context: Any) -> Any:  # type: ignore[misc]
        args, kwargs = _arguments(event, context)
        return _result(_function(*args, **kwargs))
