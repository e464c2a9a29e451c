"""pyfaas: serverless functions for Python on your own machines.

``from pyfaas import App, Client`` is the SDK (loaded on first use: worker processes, which
import this package too, never pay for it); ``%load_ext pyfaas`` adds the IPython magics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from pyfaas.sdk import App, Client, RemoteError

_SDK_NAMES = {"App", "Client", "RemoteError"}


def __getattr__(name: str) -> Any:
    if name in _SDK_NAMES:
        from pyfaas import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'pyfaas' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext pyfaas``: the ``%pyfaas`` and ``%%pyfaas`` magics."""
    from pyfaas.sdk.magics import register

    register(ipython)


__all__ = ["App", "Client", "RemoteError", "__version__", "load_ipython_extension"]
