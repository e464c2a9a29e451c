"""Peer: the no-op handler for Google's functions-framework (an HTTP function).

Served by bench/peers.py as ``functions-framework --target=noop --source=<this file>``.
"""

from __future__ import annotations


def noop(request: object) -> dict[str, object]:
    """Flask turns the dict into a JSON response, as pyfaas does with a handler's return."""
    return {}
