"""SDK functions in an importable module: shipped as source, with the local modules they use."""

from __future__ import annotations

import sdk_units
from pyfaas import App

app = App("geometry")


@app.function(memory=128)
def area(width: float, height: float, unit: str = "m") -> str:
    """The area of a rectangle, with its unit."""
    return sdk_units.squared(width * height, unit)


@app.function(serializer="pickle")
def bounding_box(points: list[tuple[float, float]]) -> sdk_units.Box:
    """The smallest Box holding every point (a dataclass: needs the pickle serializer)."""
    xs, ys = zip(*points, strict=True)
    return sdk_units.Box(min(xs), min(ys), max(xs), max(ys))
