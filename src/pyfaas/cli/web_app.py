"""How the CLI shows a function that runs a web app."""

from __future__ import annotations

from typing import Any


def web_app_label(function: dict[str, Any]) -> str | None:
    """``wsgi module:app`` / ``asgi module:app`` for a web app; None for a plain handler."""
    for interface in ("wsgi", "asgi"):
        if function.get(interface):
            return f"{interface} {function[interface]}"
    return None
