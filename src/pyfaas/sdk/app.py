"""``App`` and ``@app.function``: define functions in Python, deploy them, call them.

app = App("nba")

@app.function(memory=512, timeout=60)
def predict(features: list[float]) -> float: ...

app.deploy()
predict.remote([1.0, 2.0])
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import CodeType
from typing import Any, Generic, ParamSpec, Protocol, TypedDict, TypeVar, Unpack, overload

from pyfaas.model import validate_name
from pyfaas.model.errors import InvalidFunctionConfig
from pyfaas.sdk.client import Client, InvokeResponse, result_of
from pyfaas.sdk.errors import RemoteError
from pyfaas.sdk.remote_exceptions import rebuild_exception
from pyfaas.sdk.serialization import SERIALIZERS, Serializer, decode_result, encode_call
from pyfaas.sdk.shipping import HANDLER, build_bundle, ships_by_value

P = ParamSpec("P")
R = TypeVar("R")

_FINISHED = ("succeeded", "dead")


class _Declare(Protocol):
    """What ``@app.function(...)`` returns: the decorator proper."""

    def __call__(self, raw: Callable[P, R], /) -> Function[P, R]: ...


class App:
    """A named group of functions and the server they deploy to (``url``/``token``, by
    default ``PYFAAS_URL``/``PYFAAS_TOKEN``). Constructing one talks to no server."""

    def __init__(
        self,
        name: str,
        *,
        url: str | None = None,
        token: str | None = None,
        client: Client | None = None,
    ) -> None:
        validate_name(name)
        self.name = name
        self._url = url
        self._token = token
        self._client: Client | None = client
        self.functions: dict[str, Function[Any, Any]] = {}

    def __repr__(self) -> str:
        return f"App({self.name!r}, functions={sorted(self.functions)})"

    def __getstate__(self) -> dict[str, Any]:
        # A function shipped by value may refer to the app: its connections stay here.
        return {**self.__dict__, "_client": None}

    @property
    def client(self) -> Client:
        """The Client this app's functions call through (made on first use)."""
        if self._client is None:
            self._client = Client(self._url, self._token)
        return self._client

    def connect(self, client: Client) -> None:
        """Deploy to and call through ``client`` from now on (the CLI's --url/--token)."""
        self._client = client

    @overload
    def function(
        self, fn: Callable[P, R], /, **options: Unpack[FunctionOptions]
    ) -> Function[P, R]: ...

    @overload
    def function(self, **options: Unpack[FunctionOptions]) -> _Declare: ...

    def function(
        self, fn: Callable[..., Any] | None = None, **options: Unpack[FunctionOptions]
    ) -> Function[Any, Any] | _Declare:
        """Declare a function of this app, as ``@app.function`` or ``@app.function(...)``
        with FunctionOptions. Raises InvalidFunctionConfig for a bad name, serializer or
        requirements."""
        settings = _settings(options)
        name = options.get("name")

        def declare(raw: Callable[..., Any], /) -> Function[Any, Any]:
            full_name = name or f"{self.name}-{raw.__name__}"
            try:
                validate_name(full_name)
            except InvalidFunctionConfig as exc:
                raise InvalidFunctionConfig(
                    f"{exc.message} (give @app.function(name=...) a shorter or plainer one)",
                    code=exc.code,
                ) from None
            function = Function(raw, full_name, self, settings)
            self.functions[full_name] = function
            return function

        return declare(fn) if fn is not None else declare

    def deploy(self, *, quiet: bool = False) -> list[dict[str, Any]]:
        """Deploy every function of the app (create or update); the server's description
        of each. Raises ShippingError before anything is sent if one cannot be packed, and
        ApiError (with the server's code) if the server refuses one."""
        bundles = [(f, f.bundle()) for f in self.functions.values()]
        outcomes = []
        for function, bundle in bundles:
            outcome = self.client.deploy(function.config(), bundle.zip())
            outcomes.append(outcome)
            if not quiet:
                _report_deploy(function.name, outcome, bundle.shipped)
        return outcomes


class FunctionOptions(TypedDict, total=False):
    """What ``@app.function(...)`` takes.

    ``name``: deployed as this (default ``APP-FUNCTION``); ``memory`` in MB (128);
    ``timeout`` in seconds (3); ``requirements``: pip lines for the bundle's
    requirements.txt; ``serializer``: "json" (arguments and result are JSON values, the
    default) or "pickle" (any value cloudpickle carries); ``environment``; ``description``.
    """

    name: str | None
    memory: int
    timeout: int
    requirements: Sequence[str]
    serializer: Serializer
    environment: Mapping[str, str] | None
    description: str


def _settings(options: FunctionOptions) -> FunctionSettings:
    unknown = set(options) - set(FunctionOptions.__annotations__)
    if unknown:
        raise InvalidFunctionConfig(
            f"@app.function takes no {', '.join(sorted(unknown))}; it takes "
            f"{', '.join(FunctionOptions.__annotations__)}",
            code="unknown_field",
        )
    serializer = options.get("serializer", "json")
    if serializer not in SERIALIZERS:
        raise InvalidFunctionConfig(
            f"serializer must be one of {', '.join(SERIALIZERS)}, not {serializer!r}",
            code="invalid_serializer",
        )
    requirements = options.get("requirements", ())
    if isinstance(requirements, str) or not all(
        isinstance(r, str) and r.strip() and "\n" not in r for r in requirements
    ):
        raise InvalidFunctionConfig(
            "requirements must be a list of requirement lines, e.g. ['scikit-learn>=1.5']",
            code="invalid_requirements",
        )
    return FunctionSettings(
        memory_mb=options.get("memory", 128),
        timeout_s=options.get("timeout", 3),
        requirements=tuple(requirements),
        serializer=serializer,
        environment=dict(options.get("environment") or {}),
        description=options.get("description", ""),
    )


@dataclass(frozen=True, slots=True)
class FunctionSettings:
    memory_mb: int = 128
    timeout_s: int = 3
    requirements: tuple[str, ...] = ()
    serializer: Serializer = "json"
    environment: dict[str, str] = field(default_factory=dict)
    description: str = ""


class Function(Generic[P, R]):
    """A function of an App: ``.remote()``, ``.spawn()``, ``.map()``, ``.local()``."""

    def __init__(
        self, raw: Callable[P, R], name: str, app: App, settings: FunctionSettings
    ) -> None:
        self.pyfaas_raw_function = raw  # what the bundle's entry runs
        self.name = name
        self.app = app
        self.settings = settings
        self.remote: _Remote[P, R] = _Remote(self)
        self.__doc__ = raw.__doc__
        self.__name__ = getattr(raw, "__name__", name)
        self.__qualname__ = getattr(raw, "__qualname__", name)
        self.__module__ = getattr(raw, "__module__", "__main__")

    def __repr__(self) -> str:
        return f"<pyfaas function {self.name} ({self.__qualname__})>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Calling the function directly runs it here, as ``.local()`` does."""
        return self.pyfaas_raw_function(*args, **kwargs)

    def local(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run in this process (for tests): no server, no serialization."""
        return self.pyfaas_raw_function(*args, **kwargs)

    def config(self) -> dict[str, Any]:
        """The configuration deployed with the bundle."""
        s = self.settings
        return {
            "name": self.name,
            "handler": HANDLER,
            "memory_mb": s.memory_mb,
            "timeout_s": s.timeout_s,
            "environment": s.environment,
            "description": s.description or f"{self.__qualname__} of app {self.app.name}",
        }

    def bundle(self) -> Any:
        """The code bundle (see pyfaas.sdk.shipping). Raises ShippingError."""
        s = self.settings
        return build_bundle(
            self.pyfaas_raw_function, serializer=s.serializer, requirements=s.requirements
        )

    def deploy(self, *, quiet: bool = False) -> dict[str, Any]:
        """Deploy this function alone."""
        bundle = self.bundle()
        outcome: dict[str, Any] = self.app.client.deploy(self.config(), bundle.zip())
        if not quiet:
            _report_deploy(self.name, outcome, bundle.shipped)
        return outcome

    # --- calling ----------------------------------------------------------------------------

    def encode(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        return encode_call(self.settings.serializer, args, kwargs, function=self.name)

    def decode(self, response: InvokeResponse) -> Any:
        """The return value of a sync invocation, or its exception raised again."""
        try:
            value = result_of(response, self._namespaces(), self.shipped_code())
        except RemoteError as exc:
            if exc.error_type == "Runtime.MarshalError" and self.settings.serializer == "json":
                exc.add_note(
                    f"{self.name} returned a value JSON cannot carry: declare it with "
                    'serializer="pickle" to return any Python value'
                )
            raise
        return decode_result(self.settings.serializer, value)

    def _namespaces(self) -> list[Mapping[str, Any]]:
        globals_ = getattr(self.pyfaas_raw_function, "__globals__", None)
        return [globals_] if isinstance(globals_, dict) else []

    def shipped_code(self) -> CodeType | None:
        """The code of a function shipped by value (its remote frames are named after it)."""
        code = getattr(self.pyfaas_raw_function, "__code__", None)
        if isinstance(code, CodeType) and ships_by_value(self.pyfaas_raw_function):
            return code
        return None

    def spawn(self, *args: P.args, **kwargs: P.kwargs) -> FunctionCall[R]:
        """Queue an asynchronous invocation (durable when this returns): a handle whose
        ``.get(timeout)`` waits for the result."""
        request_id = self.app.client.submit_raw(self.name, self.encode(args, kwargs))
        return FunctionCall(self, request_id)

    def map(
        self,
        *iterables: Iterable[Any],
        concurrency: int = 64,
        progress: bool = True,
        return_exceptions: bool = False,
        batch_size: int | None = None,
    ) -> Iterator[R]:
        """``self.remote`` over the items (several iterables: zipped into positional
        arguments), ``concurrency`` calls at once; results come in the order of the items.
        The first failure is raised when its turn comes (with ``return_exceptions``, it is
        yielded instead). A Rich progress bar shows on a terminal or in a notebook. Items
        travel in batches of up to ``batch_size`` per request (None: chosen as the map goes,
        64 at most); each item is still an invocation of its own."""
        from pyfaas.sdk.mapping import map_calls

        if not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a positive integer, not {concurrency!r}")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer or None, not {batch_size!r}")
        return map_calls(
            self,
            zip(*iterables, strict=False),
            concurrency=concurrency,
            progress=progress,
            return_exceptions=return_exceptions,
            total=_common_length(iterables),
            batch_size=batch_size,
        )

    def starmap(self, items: Iterable[Sequence[Any]], **options: Any) -> Iterator[R]:
        """``map`` with each item unpacked into positional arguments."""
        return self.map(*zip(*items, strict=False), **options)


class _Remote(Generic[P, R]):
    """``fn.remote(...)`` runs on the server and waits; ``await fn.remote.aio(...)`` too,
    without blocking the event loop."""

    def __init__(self, function: Function[P, R]) -> None:
        self._function = function

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        f = self._function
        response = f.app.client.invoke_raw(f.name, f.encode(args, kwargs))
        result: R = f.decode(response)
        return result

    async def aio(self, *args: P.args, **kwargs: P.kwargs) -> R:
        f = self._function
        response = await f.app.client.invoke_raw_async(f.name, f.encode(args, kwargs))
        result: R = f.decode(response)
        return result


class FunctionCall(Generic[R]):
    """An asynchronous invocation: ``status`` and ``get(timeout)``."""

    def __init__(self, function: Function[Any, R], request_id: str) -> None:
        self.function = function
        self.request_id = request_id

    def __repr__(self) -> str:
        return f"<FunctionCall {self.function.name} {self.request_id}>"

    @property
    def status(self) -> str:
        """queued, running, succeeded, failed (a retry is pending) or dead."""
        return str(self.function.app.client.invocation(self.request_id)["status"])

    def get(self, timeout: float | None = None) -> R:
        """Wait for the outcome: the result, or the exception of the last attempt once
        retries ran out (status dead). Raises TimeoutError after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.01
        client = self.function.app.client
        while True:
            state = client.invocation(self.request_id)
            if state["status"] in _FINISHED:
                return self._outcome(state)
            delay = self._wait(deadline, delay)
            time.sleep(delay)

    async def get_async(self, timeout: float | None = None) -> R:  # noqa: ASYNC109
        """``get`` on the running event loop."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.01
        client = self.function.app.client
        while True:
            state = await client.invocation_async(self.request_id)
            if state["status"] in _FINISHED:
                return self._outcome(state)
            delay = self._wait(deadline, delay)
            await asyncio.sleep(delay)

    def _wait(self, deadline: float | None, delay: float) -> float:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"{self.function.name} request {self.request_id} has not finished "
                    f"(status {self.status}); call get() again to keep waiting"
                )
            return min(delay * 1.5, 0.5, left)
        return min(delay * 1.5, 0.5)

    def _outcome(self, state: dict[str, Any]) -> R:
        if state["status"] == "succeeded":
            result: R = decode_result(self.function.settings.serializer, state.get("result"))
            return result
        error = _error_object(state.get("last_error"), state.get("condition"))
        function = self.function
        raise rebuild_exception(
            error, self.request_id, function._namespaces(), function.shipped_code()
        )


def _error_object(last_error: str | None, condition: str | None) -> dict[str, Any]:
    import json

    try:
        error = json.loads(last_error or "")
    except ValueError:
        error = None
    if isinstance(error, dict):
        return error
    return {"errorType": condition or "Unknown", "errorMessage": last_error or ""}


def _common_length(iterables: Sequence[Iterable[Any]]) -> int | None:
    lengths = [len(i) for i in iterables if hasattr(i, "__len__")]  # type: ignore[arg-type]
    return min(lengths) if len(lengths) == len(iterables) and lengths else None


def _report_deploy(name: str, outcome: Mapping[str, Any], shipped: str) -> None:
    from rich.console import Console

    state = "Created" if outcome["created"] else ("Updated" if outcome["changed"] else "Unchanged")
    how = "by value" if shipped == "value" else "as source"
    layer = ", with a dependency layer" if outcome.get("layer_sha256") else ""
    Console(stderr=True).print(
        f"[green]✓[/green] {state} [bold]{name}[/bold] (shipped {how}{layer})", highlight=False
    )


__all__ = ["App", "Function", "FunctionCall", "RemoteError"]
