"""The Python SDK: define functions with ``App``, deploy them, call them; ``Client`` calls
any function by name. Talks HTTP to a pyfaas server; imports nothing of the server's."""

from pyfaas.sdk.app import App, Function, FunctionCall
from pyfaas.sdk.client import Client, InvokeResponse
from pyfaas.sdk.errors import (
    ApiError,
    RemoteError,
    RemoteTraceback,
    SerializationError,
    ServerUnreachable,
    ShippingError,
)

__all__ = [
    "ApiError",
    "App",
    "Client",
    "Function",
    "FunctionCall",
    "InvokeResponse",
    "RemoteError",
    "RemoteTraceback",
    "SerializationError",
    "ServerUnreachable",
    "ShippingError",
]
