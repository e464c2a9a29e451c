"""A local top-level module that sdk_apps.geometry imports: shipped along with it."""

from __future__ import annotations

from dataclasses import dataclass


def squared(value: float, unit: str) -> str:
    return f"{value:g} {unit}²"


@dataclass(frozen=True)
class Box:
    left: float
    bottom: float
    right: float
    top: float


class InsufficientFunds(Exception):
    """A user's exception type, importable on both sides: rebuilt as itself."""


@dataclass(frozen=True)
class Reading:
    sensor: str
    values: tuple[float, ...]
